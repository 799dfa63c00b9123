"""``anygate submit`` and ``anygate jobs get|list|cancel|watch`` (docs/cli.md#jobs), on the
synchronous ``anygate.client.Client`` with the tenant key the connection context finds.

Output is for people by default and for programs with ``--json``; a command whose job ended
without its answer (failed, cancelled, expired) exits with status 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from anygate.client import Client, Job, JobEvent
from anygate.ops.cli_client import (
    JOB_FAILED_EXIT,
    client_errors,
    leave_on_interrupt,
    open_client,
    parse_deadline,
    parse_metadata,
)
from anygate.ops.cli_context import Sources, connection_options
from anygate.ops.cli_output import console
from anygate.ops.job_stream import StreamView
from anygate.ops.job_view import (
    answer_of,
    error_message,
    job_table,
    jobs_table,
    to_json,
)

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
PRIORITIES = ("interactive", "standard", "batch")
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "expired")


def read_body(source: str) -> dict[str, Any]:
    """``--body FILE`` or ``--body -`` (stdin): a JSON object."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise click.BadParameter(
            f"cannot read {source}: {exc.strerror}", param_hint="--body"
        ) from None
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--body") from None
    if not isinstance(body, dict):
        raise click.BadParameter("expected a JSON object", param_hint="--body")
    return body


def request_body(
    prompt: str | None, body_file: str | None, model: str | None, endpoint: str
) -> dict[str, Any]:
    """The request: a full body from ``--body`` (``--model`` replaces its model), or a prompt
    as one user message (chat) or as the input (embeddings)."""
    if body_file is not None:
        if prompt is not None:
            raise click.UsageError("give a PROMPT or --body, not both")
        body = read_body(body_file)
        return {**body, "model": model} if model else body
    if prompt is None:
        raise click.UsageError("give a PROMPT, or a request body with --body FILE|-")
    if not model:
        raise click.UsageError("--model is required with a PROMPT")
    if endpoint == EMBEDDINGS:
        return {"model": model, "input": prompt}
    return {"model": model, "messages": [{"role": "user", "content": prompt}]}


def consoles() -> tuple[Console, Console]:
    return console(), console(stderr=True)


def finish(job: Job, *, as_json: bool) -> None:
    """Print a finished job's answer (or, with ``as_json``, the job); exit 1 when it has none."""
    if as_json:
        click.echo(to_json(job.raw))
    elif job.status == "succeeded":
        click.echo(answer_of(job))
    if job.status != "succeeded":
        if not as_json:
            reason = f": {error_message(job.error)}" if job.error else ""
            click.echo(f"job {job.id} {job.status}{reason}", err=True)
        sys.exit(JOB_FAILED_EXIT)


def stream(client: Client, job_id: str, *, states: bool, as_json: bool) -> None:
    """Draw the job's events until its end; exit 1 when it ended without its answer."""
    out, err = consoles()
    if as_json:
        last: JobEvent | None = None
        for event in client.stream(job_id):
            click.echo(to_json({"id": event.id, "event": event.type, "data": event.data}))
            last = event
        ended = last
    else:
        with StreamView(out, err, states=states) as view:
            ended = view.show(client.stream(job_id))
    if ended is None:
        raise click.ClickException(f"the event stream of {job_id} ended before the job did")
    if ended.type != "completed":
        if not as_json and not states:
            detail = ended.data.get("error") if ended.type == "failed" else None
            reason = f": {error_message(detail)}" if detail else ""
            click.echo(f"job {job_id} {ended.type}{reason}", err=True)
        sys.exit(JOB_FAILED_EXIT)


@click.command()
@click.argument("prompt", required=False)
@click.option("--model", "-m", help="The model alias (required with a PROMPT).")
@click.option("--body", "body_file", metavar="FILE|-", help="The whole request body as JSON.")
@click.option("--endpoint", type=click.Choice([CHAT, EMBEDDINGS]), default=CHAT, show_default=True)
@click.option("--priority", type=click.Choice(PRIORITIES), help="Default: standard.")
@click.option("--metadata", multiple=True, metavar="KEY=VALUE", help="Repeatable.")
@click.option(
    "--deadline",
    metavar="DURATION|@UNIX",
    help="Not started by then: the job expires (e.g. 10m, 2h, or @1767225600).",
)
@click.option("--webhook-url", metavar="URL", help="POSTed to when the job ends.")
@click.option("--idempotency-key", metavar="KEY", help="The same key answers the same job.")
@click.option("--wait", "wait", is_flag=True, help="Wait and print the answer.")
@click.option("--stream", "stream_", is_flag=True, help="Print the answer's tokens as they come.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the job, or events).")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="With --wait: give up after this many seconds (exit 1).",
)
@connection_options(key=True)
def submit(  # click passes every option by name
    *,
    sources: Sources,
    prompt: str | None,
    model: str | None,
    body_file: str | None,
    endpoint: str,
    priority: str | None,
    metadata: tuple[str, ...],
    deadline: str | None,
    webhook_url: str | None,
    idempotency_key: str | None,
    wait: bool,
    stream_: bool,
    as_json: bool,
    timeout: float | None,
) -> None:
    """Submit a job: prints its id; --wait its answer; --stream the answer as it streams."""
    if wait and stream_:
        raise click.UsageError("give --wait or --stream, not both")
    if stream_ and endpoint != CHAT and not as_json:
        raise click.UsageError("--stream shows chat text; use --wait or --json for embeddings")
    body = request_body(prompt, body_file, model, endpoint)
    pairs = parse_metadata(metadata)
    at = parse_deadline(deadline)
    with open_client(sources) as client, client_errors():
        job = client.submit(
            endpoint,
            body,
            priority=priority,
            metadata=pairs,
            deadline=at,
            webhook_url=webhook_url,
            idempotency_key=idempotency_key,
        )
        if not (stream_ or wait):
            click.echo(to_json(job.raw) if as_json else job.id)
            return
        with leave_on_interrupt(job.id, f"anygate jobs get {job.id}"):
            if stream_:
                click.echo(f"job {job.id}", err=True)
                stream(client, job.id, states=False, as_json=as_json)
            else:
                finish(client.wait(job.id, timeout=timeout), as_json=as_json)


@click.group()
def jobs() -> None:
    """Read, list, cancel and watch jobs."""


@jobs.command("get")
@click.argument("job_id")
@click.option(
    "--wait",
    type=click.FloatRange(min=0, min_open=True, max=60),
    default=None,
    help="Long-poll up to this many seconds for the job to end.",
)
@click.option("--json", "as_json", is_flag=True, help="The job object as JSON.")
@connection_options(key=True)
def get_job(sources: Sources, job_id: str, wait: float | None, as_json: bool) -> None:
    """Show a job: its state, timing and error, and the answer when it succeeded."""
    with (
        open_client(sources) as client,
        client_errors(),
        leave_on_interrupt(job_id, f"anygate jobs get {job_id}"),
    ):
        job = client.get(job_id, wait=wait)
    if as_json:
        click.echo(to_json(job.raw))
        return
    out, _ = consoles()
    out.print(job_table(job))
    if job.status == "succeeded":
        out.print()
        out.print(answer_of(job), markup=False)


@jobs.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only jobs in this state.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One job object per line (JSON lines).")
@connection_options(key=True)
def list_jobs(sources: Sources, status: str | None, limit: int, as_json: bool) -> None:
    """The tenant's jobs, newest first."""
    with open_client(sources) as client, client_errors():
        found = list(client.list(status=status, page_size=min(limit, 100), limit=limit))
    if as_json:
        for job in found:
            click.echo(to_json(job.raw))
        return
    consoles()[0].print(jobs_table(found))


@jobs.command("cancel")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="The job object as JSON.")
@connection_options(key=True)
def cancel_job(sources: Sources, job_id: str, as_json: bool) -> None:
    """Cancel a job: a queued one never runs, a running one is stopped within a second; a
    finished one stays as it is (its status is printed)."""
    with open_client(sources) as client, client_errors():
        job = client.cancel(job_id)
    click.echo(to_json(job.raw) if as_json else f"{job.id} {job.status}")


@jobs.command("watch")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Each event as a JSON line.")
@connection_options(key=True)
def watch_job(sources: Sources, job_id: str, as_json: bool) -> None:
    """Follow a job's events live: its state changes and its answer's tokens, until it ends
    (a finished job's log is replayed)."""
    with (
        open_client(sources) as client,
        client_errors(),
        leave_on_interrupt(job_id, f"anygate jobs get {job_id}"),
    ):
        stream(client, job_id, states=True, as_json=as_json)
