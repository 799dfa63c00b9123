"""A job's event stream that survives dropped connections (docs/api.md#job-events-sse).

The gateway replays exactly what came after a ``Last-Event-ID``; the ``StreamCursor`` remembers
the last event handed to the caller, sends its id on each reconnection and drops anything at or
before it (should a proxy replay more), so each event reaches the caller once, in order. A
connection that breaks, or a body that ends before a terminal event (the gateway ends streams
while Redis is away), is reconnected after a backoff; ``max_reconnects`` of them in a row
without a new event give up with ``APIConnectionError``.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from anygate.client._calls import Call
from anygate.client._errors import APIConnectionError, UnexpectedResponseError
from anygate.client._jobs import get, job_path
from anygate.client._models import JobEvent
from anygate.client._protocol import Close, Emit, NextSSE, Op, Opened, Sleep, send
from anygate.client._retry import RetryPolicy

MAX_RECONNECTS = 5


def event_key(event_id: str) -> tuple[int, int]:
    """A Redis stream id (``<ms>-<seq>``, or ``<ms>``) as a sortable pair."""
    ms, _, seq = event_id.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        raise ValueError(
            f"last_event_id: expected an id such as 1700000000000-0, got {event_id!r}"
        ) from None


class StreamCursor:
    """The resume bookkeeping of one ``stream()``: what was handed on, what to ask for next."""

    def __init__(self, last_event_id: str | None, policy: RetryPolicy, max_reconnects: int) -> None:
        self.last_id = last_event_id or None
        self._last_key = event_key(self.last_id) if self.last_id else None
        self._policy = policy
        self._max_reconnects = max_reconnects
        self.reconnects = 0
        """Reconnections in a row without a new event."""
        self.ended = False
        self.fresh = 0
        """New events on the current connection."""

    def headers(self) -> dict[str, str]:
        return {"last-event-id": self.last_id} if self.last_id else {}

    def connected(self) -> None:
        self.fresh = 0

    def accept(self, event_id: str, event_type: str, data: str) -> JobEvent | None:
        """The event to hand on, or None: a keep-alive, or one already handed on."""
        if not data or not event_id:
            return None  # not an event of the job (a comment, or a parser's empty event)
        key = event_key(event_id)
        if self._last_key is not None and key <= self._last_key:
            return None
        try:
            payload: Any = json.loads(data)
        except ValueError:
            raise UnexpectedResponseError(f"event {event_id}: data is not JSON") from None
        event = JobEvent(
            event_id,
            event_type or "message",
            payload if isinstance(payload, dict) else {"data": payload},
        )
        self.last_id, self._last_key = event_id, key
        self.reconnects, self.ended = 0, event.terminal
        self.fresh += 1
        return event

    def reconnect_delay(self) -> float | None:
        """The pause before reconnecting, or None when the reconnections are spent."""
        if self.reconnects >= self._max_reconnects:
            return None
        delay = self._policy.backoff(self.reconnects)
        self.reconnects += 1
        return delay


def stream_events(
    job_id: str,
    policy: RetryPolicy,
    *,
    last_event_id: str | None,
    max_reconnects: int = MAX_RECONNECTS,
) -> Op[None]:
    cursor = StreamCursor(last_event_id, policy, max_reconnects)
    path = job_path(job_id, "/events")
    while True:
        call = Call("GET", path, headers=cursor.headers())
        opened: Opened = yield from send(call, policy, stream=True)
        cursor.connected()
        dropped: Exception | None = None
        try:
            while not cursor.ended:
                sse = yield NextSSE(opened)
                if sse is None:
                    break
                event = cursor.accept(sse.id, sse.event, sse.data)
                if event is not None:
                    yield Emit(event)
        except httpx.TransportError as exc:
            dropped = exc
        yield Close(opened)
        if cursor.ended:
            return
        if dropped is None and cursor.fresh == 0:
            # an empty stream that ended: the job may have ended before the id we resume after
            job = yield from get(job_id, policy)
            if job.done:
                return
        delay = cursor.reconnect_delay()
        if delay is None:
            why = f"{type(dropped).__name__}: {dropped}" if dropped else "the stream kept ending"
            raise APIConnectionError(
                f"events of job {job_id}: gave up after {max_reconnects} reconnections ({why})"
            ) from dropped
        yield Sleep(delay)
