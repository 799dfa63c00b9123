"""What the clients were told: every request's outcome, every job id they learned, every stream
they read. Plain records, filled in by ``clients.py`` and read by ``reconcile.py``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

WAITING_KINDS = frozenset({"sync_chat", "openai_stream", "gemini_stream", "poll_wait", "job_sse"})
"""Calls that may legitimately wait for a job (a long-poll, a synchronous call, a stream); every
other call (a submit, a poll, an upload) is expected to be answered at once."""


@dataclass
class Call:
    """One HTTP request, as the client lived it."""

    kind: str
    api: int
    started: float
    ended: float = 0.0
    status: int | None = None
    """The HTTP status; None when no response came (connection refused, reset, timeout)."""
    outcome: str = "ok"
    """ok | http_error | connect_error | timeout | stream_error | left (the client hung up)."""
    code: str | None = None
    retry_after: str | None = None
    job_id: str | None = None
    detail: str = ""

    @property
    def took(self) -> float:
        return self.ended - self.started


@dataclass
class Stream:
    """One streamed answer as its reader saw it: the text, how it ended, the events' ids."""

    surface: str
    """openai | gemini | job_sse."""
    prompt: str
    expected: str
    job_id: str | None = None
    text: str = ""
    """For job_sse: the chunks after the last ``retry`` event (the attempt that counts)."""
    raw_text: str = ""
    """Every chunk's text in arrival order, retries or not."""
    complete: bool = False
    """The stream ended normally: ``[DONE]``, a finish reason, or a ``completed`` event."""
    interrupted: str | None = None
    """The error the stream ended with, if any (an error chunk, a ``failed`` event)."""
    left_early: bool = False
    """The client hung up on purpose mid-stream."""
    event_ids: list[str] = field(default_factory=list)
    event_types: list[str] = field(default_factory=list)
    reconnects: int = 0
    retries_seen: int = 0


@dataclass
class Journal:
    calls: list[Call] = field(default_factory=list)
    streams: list[Stream] = field(default_factory=list)
    told: dict[str, str] = field(default_factory=dict)
    """Job id -> how the client learned of it (``202``, ``header``)."""
    webhook_jobs: set[str] = field(default_factory=set)
    sync_results: list[tuple[str, str, str]] = field(default_factory=list)
    """(job id or '', expected text, text) of every synchronous chat answer."""

    def call(self, kind: str, api: int) -> Call:
        record = Call(kind, api, time.time())
        self.calls.append(record)
        return record

    def learn(self, job_id: str | None, how: str) -> None:
        if job_id:
            self.told.setdefault(job_id, how)
