"""``anygate batch submit|get|cancel|results`` (docs/cli.md#batches): OpenAI-style batches from a
JSONL file, on ``anygate.client.Client``.

``submit --wait`` follows the batch with a rich progress bar (completed, failed and total lines,
the rate and the time left), then prints a summary; it exits 1 unless the batch completed.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from anygate.client import Batch
from anygate.ops.cli_client import (
    JOB_FAILED_EXIT,
    client_errors,
    leave_on_interrupt,
    open_client,
    parse_metadata,
)
from anygate.ops.cli_context import Sources, connection_options
from anygate.ops.cli_output import console
from anygate.ops.job_view import to_json

ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings")


class CountsColumn(ProgressColumn):
    """``completed ✓  failed ✗  / total`` of the batch the task follows."""

    def render(self, task: Task) -> Text:
        done, failed = task.fields.get("ok", 0), task.fields.get("failed", 0)
        total = int(task.total) if task.total is not None else "?"
        return Text.assemble(
            (f"{done} ok", "green"),
            "  ",
            (f"{failed} failed", "red" if failed else "dim"),
            f"  / {total}",
        )


class RateColumn(ProgressColumn):
    """Lines finished per second: over rich's recent samples, else (a batch that went from
    none to all between two polls) over the whole wait."""

    def render(self, task: Task) -> Text:
        speed = task.speed
        if speed is None and task.completed and task.elapsed:
            speed = task.completed / task.elapsed
        return Text("-- lines/s" if speed is None else f"{speed:.1f} lines/s", style="cyan")


def progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        CountsColumn(),
        RateColumn(),
        TextColumn("elapsed"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def summary_lines(batch: Batch, elapsed_s: float | None = None) -> list[str]:
    counts = batch.request_counts
    lines = [
        f"batch {batch.id}: {batch.status}",
        f"  requests: {counts.total} total, {counts.completed} completed, {counts.failed} failed",
    ]
    if elapsed_s is not None:
        lines.append(f"  elapsed:  {elapsed_s:.1f}s")
    lines.append(f"  output file: {batch.output_file_id or '-'}")
    lines.append(f"  error file:  {batch.error_file_id or '-'}")
    lines.extend(f"  error: {e.get('message', e)}" for e in batch.errors)
    return lines


def print_summary(batch: Batch, elapsed_s: float | None = None) -> None:
    for line in summary_lines(batch, elapsed_s):
        click.echo(line)


@click.group()
def batch() -> None:
    """Submit batches of requests from a JSONL file and read their results."""


@batch.command("submit")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--endpoint", type=click.Choice(ENDPOINTS), default=ENDPOINTS[0], show_default=True)
@click.option("--window", default="24h", show_default=True, help="The completion window.")
@click.option("--metadata", multiple=True, metavar="KEY=VALUE", help="Repeatable.")
@click.option("--webhook-url", metavar="URL", help="POSTed to when the batch ends.")
@click.option("--wait", is_flag=True, help="Follow it with a progress bar, then summarise.")
@click.option(
    "--poll",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="With --wait: seconds between polls.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the batch object as JSON.")
@connection_options(key=True)
def submit_batch(  # click passes every option by name
    *,
    sources: Sources,
    file: Path,
    endpoint: str,
    window: str,
    metadata: tuple[str, ...],
    webhook_url: str | None,
    wait: bool,
    poll: float,
    as_json: bool,
) -> None:
    """Upload FILE (one request per line, OpenAI's batch format) and create the batch: prints
    its id; --wait follows it to its end."""
    pairs = parse_metadata(metadata)
    with open_client(sources) as client, client_errors():
        created = client.submit_batch(
            file,
            endpoint=endpoint,
            completion_window=window,
            metadata=pairs,
            webhook_url=webhook_url,
        )
        if not wait:
            click.echo(to_json(created.raw) if as_json else created.id)
            return
        click.echo(f"batch {created.id} created from {file.name}", err=True)
        started = time.monotonic()
        follow_up = f"anygate batch get {created.id}"
        with leave_on_interrupt(created.id, follow_up), progress_bar(console(stderr=True)) as bar:
            task = bar.add_task(created.status, total=None, ok=0, failed=0)

            def show(state: Batch) -> None:
                counts = state.request_counts
                bar.update(
                    task,
                    description=state.status,
                    total=counts.total or None,
                    completed=counts.finished,
                    ok=counts.completed,
                    failed=counts.failed,
                )

            final = client.wait_batch(created.id, progress=show, poll_s=poll)
    if as_json:
        click.echo(to_json(final.raw))
    else:
        print_summary(final, time.monotonic() - started)
    if final.status != "completed":
        raise SystemExit(JOB_FAILED_EXIT)


@batch.command("get")
@click.argument("batch_id")
@click.option("--json", "as_json", is_flag=True, help="The batch object as JSON.")
@connection_options(key=True)
def get_batch(sources: Sources, batch_id: str, as_json: bool) -> None:
    """Show a batch: status, counts and its output and error files."""
    with open_client(sources) as client, client_errors():
        found = client.get_batch(batch_id)
    if as_json:
        click.echo(to_json(found.raw))
    else:
        print_summary(found)


@batch.command("cancel")
@click.argument("batch_id")
@connection_options(key=True)
def cancel_batch(sources: Sources, batch_id: str) -> None:
    """Cancel a batch: queued lines are never sent, finished ones are kept."""
    with open_client(sources) as client, client_errors():
        found = client.cancel_batch(batch_id)
    click.echo(f"{found.id} {found.status}")


@batch.command("results")
@click.argument("batch_id")
@click.option("--errors", is_flag=True, help="The failed lines instead of the answers.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write the JSONL here instead of to stdout.",
)
@connection_options(key=True)
def batch_results(sources: Sources, batch_id: str, errors: bool, out: Path | None) -> None:
    """The batch's results as JSON lines (its output file's lines; --errors: its error
    file's), each as the gateway wrote it."""
    written = 0
    with open_client(sources) as client, client_errors():
        found = client.get_batch(batch_id)
        if not found.done:
            raise click.ClickException(
                f"batch {batch_id} is {found.status}: its results are written when it ends "
                f"(follow it with: anygate batch get {batch_id})"
            )
        lines = (to_json(r.raw) for r in client.batch_results(found) if r.ok != errors)
        if out is None:
            for line in lines:
                click.echo(line)
                written += 1
            return
        with out.open("w", encoding="utf-8") as sink:
            for line in lines:
                sink.write(line + "\n")
                written += 1
    click.echo(f"{written} {'error lines' if errors else 'results'} written to {out}", err=True)
