"""A job's timeline for the console's job page (docs/console.md#jobs), built from its event log.

Pure: events (``ev:{job}``, as ``JobQueue.events_after`` replays them, the implicit ``queued``
first) plus the record's attempt history in, entries out; the page and its live stream render
the entries. The event types are the broker scripts' (``broker/lua/*.lua``): ``started``
(claim, or a provider batch taking the job), ``chunk`` (streamed output, appended by the worker
holding the attempt), ``retry`` (the next attempt, with ``reason``, ``provider`` and, when the
route moves, ``model``), and the terminal ``completed``, ``failed``, ``cancelled``, ``expired``.

Chunks are counted, never listed: a long stream is hundreds of events whose text is the
tenant's. The upstream error of a failed attempt is not in the ``retry`` event; the worker wrote
it to the record's history (``workers/disposition.py``), keyed by attempt, with the deployment
(``provider`` and ``model``) that attempt called.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from anygate.broker.models import JobEvent, stream_id_key


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One line of the timeline: what happened (``kind``, the event type or ``chunks``), when
    (Unix ms), for which attempt, and a few labelled facts to show beside it."""

    kind: str
    at_ms: int
    attempt: int | None = None
    details: tuple[tuple[str, str], ...] = field(default=())
    until_ms: int | None = None
    """The last chunk's time, for a ``chunks`` entry."""
    count: int = 0
    """How many chunks a ``chunks`` entry stands for."""


TITLES = {
    "queued": "Queued",
    "started": "Started",
    "chunks": "Streamed chunks",
    "retry": "Retry",
    "completed": "Succeeded",
    "failed": "Failed",
    "cancelled": "Cancelled",
    "expired": "Expired",
}


def _data(event: JobEvent) -> dict[str, Any]:
    """The event's JSON object; anything else (a log from an older version) reads as empty."""
    try:
        value = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _deployment(provider: object, model: object) -> str:
    if provider and model:
        return f"{provider}:{model}"
    return str(provider or model or "")


def _error_text(error: object) -> str:
    """``code (status): message`` of an attempt or job error; never more than the error says."""
    if not isinstance(error, Mapping):
        return str(error) if error else ""
    code = error.get("code") or error.get("type") or "error"
    status = error.get("status") or error.get("upstream_status")
    head = f"{code} (upstream {status})" if status else str(code)
    message = error.get("message")
    return f"{head}: {message}" if message else head


def _usage_text(usage: object) -> str:
    if not isinstance(usage, Mapping):
        return ""
    parts = [
        f"{usage[name]} {label}"
        for name, label in (
            ("prompt_tokens", "prompt"),
            ("completion_tokens", "completion"),
            ("total_tokens", "total"),
        )
        if isinstance(usage.get(name), int)
    ]
    return ", ".join(parts) + " tokens" if parts else ""


def _details(*pairs: tuple[str, object]) -> tuple[tuple[str, str], ...]:
    return tuple((label, str(value)) for label, value in pairs if value not in (None, ""))


def event_ms(event: JobEvent, created_ms: int) -> int:
    """The event's time: its stream id's; the implicit ``queued`` (id ``0-1``) is the job's
    creation."""
    ms = stream_id_key(event.id)[0]
    return ms if ms > 0 else created_ms


def build_timeline(
    events: Iterable[JobEvent],
    *,
    created_ms: int,
    history: Sequence[Mapping[str, Any]] = (),
    first_deployment: str = "",
) -> list[TimelineEntry]:
    """The entries, in the log's order. ``first_deployment``: what the first attempt calls
    (the plan's first step, ``provider:model``); later attempts follow the ``retry`` events'
    ``provider``/``model``, and an attempt the history recorded is named as recorded."""
    by_attempt = {int(h["attempt"]): h for h in history if isinstance(h.get("attempt"), int)}
    provider, _, model = first_deployment.partition(":")
    entries: list[TimelineEntry] = []
    chunks: TimelineEntry | None = None

    def flush() -> None:
        nonlocal chunks
        if chunks is not None:
            entries.append(chunks)
            chunks = None

    for event in events:
        at = event_ms(event, created_ms)
        if event.type == "chunk":
            if chunks is not None and chunks.attempt == event.attempt:
                chunks = TimelineEntry(
                    "chunks", chunks.at_ms, chunks.attempt, until_ms=at, count=chunks.count + 1
                )
            else:
                flush()
                chunks = TimelineEntry("chunks", at, event.attempt, until_ms=at, count=1)
            continue
        flush()
        data = _data(event)
        if event.type == "started":
            recorded = by_attempt.get(event.attempt) if event.attempt is not None else None
            name = (
                _deployment(recorded.get("provider"), recorded.get("model"))
                if recorded
                else _deployment(provider, model)
            )
            execution = data.get("execution")
            entries.append(
                TimelineEntry(
                    "started",
                    at,
                    event.attempt,
                    _details(
                        ("deployment", name),
                        ("execution", execution if execution != "live" else ""),
                        ("provider batch", data.get("provider_batch")),
                    ),
                )
            )
        elif event.type == "retry":
            failed = by_attempt.get(event.attempt - 1) if event.attempt is not None else None
            if data.get("provider"):
                provider = str(data["provider"])
            if data.get("model"):
                model = str(data["model"])
            delay = data.get("delay_ms")
            entries.append(
                TimelineEntry(
                    "retry",
                    at,
                    event.attempt,
                    _details(
                        ("reason", data.get("reason")),
                        (
                            "failed attempt",
                            failed.get("attempt") if failed else None,
                        ),
                        (
                            "failed on",
                            _deployment(failed.get("provider"), failed.get("model"))
                            if failed
                            else "",
                        ),
                        ("upstream error", _error_text(failed.get("error")) if failed else ""),
                        ("next on", _deployment(provider, model)),
                        ("after", f"{delay} ms" if isinstance(delay, int) and delay else ""),
                    ),
                )
            )
        elif event.type in ("completed", "failed"):
            entries.append(
                TimelineEntry(
                    event.type,
                    at,
                    event.attempt,
                    _details(
                        ("usage", _usage_text(data.get("usage"))),
                        ("error", _error_text(data.get("error"))),
                    ),
                )
            )
        elif event.type in ("cancelled", "expired", "queued"):
            entries.append(
                TimelineEntry(
                    event.type, at, event.attempt, _details(("reason", data.get("reason")))
                )
            )
        else:  # a type this console does not know yet: shown by name, nothing read from it
            entries.append(TimelineEntry(event.type, at, event.attempt))
    flush()
    return entries


def attempts_of(entries: Iterable[TimelineEntry]) -> int:
    """How many attempts started: the timeline's ``started`` entries."""
    return sum(1 for e in entries if e.kind == "started")


def when(ms: int | None) -> str:
    """A time as the console writes it: UTC, to the millisecond (a job's steps are that
    close)."""
    if ms is None:
        return "—"
    stamp = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return stamp.strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d} UTC"
