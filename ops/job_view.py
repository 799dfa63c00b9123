"""How the job commands show jobs and their events (docs/cli.md#jobs): pure functions from the
client's typed results to text and rich renderables, testable without a terminal."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

from anygate.client import Job, JobEvent
from anygate.ops.status_view import format_age

STATUS_STYLES = {
    "queued": "cyan",
    "running": "blue",
    "succeeded": "green",
    "failed": "bold red",
    "cancelled": "yellow",
    "expired": "yellow",
}


def to_json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def error_message(error: dict[str, Any] | None) -> str:
    """An OpenAI-shaped error object in one line: its message, with the code when there is one."""
    if not error:
        return "no error given"
    message = str(error.get("message") or "no message")
    code = error.get("code") or error.get("type")
    return f"{message} ({code})" if code else message


def answer_of(job: Job) -> str:
    """What ``--wait`` prints for a job that succeeded: the chat answer's text, else the
    result as JSON (an embedding)."""
    if job.text is not None:
        return job.text
    return to_json(job.result)


def event_line(event: JobEvent) -> str | None:
    """A state change in one line (``chunk`` events carry text, not state: None)."""
    data = event.data
    if event.type == "chunk":
        return None
    if event.type == "started":
        worker = data.get("worker")
        return f"started: attempt {data.get('attempt', '?')}" + (f" on {worker}" if worker else "")
    if event.type == "retry":
        reason = data.get("reason") or "retry"
        return f"retry: attempt {data.get('attempt', '?')} begins ({reason}); the answer restarts"
    if event.type == "failed":
        return f"failed: {error_message(data.get('error'))}"
    return event.type


def job_fields(job: Job, now: float | None = None) -> list[tuple[str, str]]:
    """``jobs get``'s lines: what is set, in reading order."""
    now = time.time() if now is None else now

    def when(at: float | None) -> str | None:
        if at is None:
            return None
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
        return f"{stamp} ({format_age(now - at)} ago)"

    fields: list[tuple[str, str | None]] = [
        ("id", job.id),
        ("status", job.status),
        ("endpoint", job.endpoint),
        ("model", job.model),
        ("provider", job.provider),
        ("priority", job.priority),
        ("created", when(job.created_at)),
        ("started", when(job.started_at)),
        ("finished", when(job.finished_at)),
        ("attempts", str(job.attempts)),
        ("metadata", ", ".join(f"{k}={v}" for k, v in job.metadata.items()) or None),
        ("cost", f"${job.cost_usd:.6f}" if job.cost_usd is not None else None),
        ("error", error_message(job.error) if job.error else None),
    ]
    return [(name, value) for name, value in fields if value is not None]


def job_table(job: Job, now: float | None = None) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for name, value in job_fields(job, now):
        style = STATUS_STYLES.get(value, "") if name == "status" else ""
        table.add_row(name, Text(value, style=style))
    return table


def jobs_table(jobs: Iterable[Job], now: float | None = None) -> Table:
    now = time.time() if now is None else now
    table = Table(title="Jobs (newest first)", title_justify="left")
    for name in ("id", "status", "model", "priority", "created", "attempts"):
        table.add_column(name, justify="right" if name == "attempts" else "left")
    for job in jobs:
        created = f"{format_age(now - job.created_at)} ago" if job.created_at else "-"
        table.add_row(
            job.id,
            Text(job.status, style=STATUS_STYLES.get(job.status, "")),
            job.model or "-",
            job.priority or "-",
            created,
            str(job.attempts),
        )
    return table


class TailText:
    """Text that shows only its last lines that fit: a streaming answer on a terminal keeps
    its newest tokens in view (the whole text is printed once it is done)."""

    def __init__(self, text: str, reserve: int = 0) -> None:
        self.text = text
        self.reserve = reserve
        """Terminal lines kept for what is drawn above it."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = list(Text(self.text).wrap(console, options.max_width))
        room = max(1, (options.height or console.height) - self.reserve - 1)
        if len(lines) > room:
            yield Text("…", style="dim")
            lines = lines[-(room - 1) :] if room > 1 else lines[-1:]
        yield from lines
