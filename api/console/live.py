"""Live pages over SSE (docs/console.md#live-updates): a page names its stream in
``data-sse``; the stream re-renders the page's fragments on a timer and sends those that
changed as ``fragment`` events (``{"id", "html"}``), which console.js puts in place.

Each stream checks its session again every few seconds and lasts at most ``MAX_STREAM_S``:
then it ends, the browser's EventSource reconnects, and the reconnect passes the console's
guard again. A stream whose session ended says ``end`` and stops.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
from starlette.requests import Request
from starlette.responses import StreamingResponse

from anygate.api.console.guard import Console, current_session

Fragments = Callable[[], Awaitable[list[tuple[str, str]]]]
"""Renders the page's live parts now: (element id, inner HTML) pairs."""

MAX_STREAM_S = 300.0
SESSION_CHECK_S = 5.0
RETRY_MS = 2000


def fragment_event(element_id: str, html: str) -> bytes:
    data = orjson.dumps({"id": element_id, "html": html}).decode()
    return f"event: fragment\ndata: {data}\n\n".encode()


END_EVENT = b"event: end\ndata: {}\n\n"


def live_fragments(
    request: Request,
    console: Console,
    fragments: Fragments,
    *,
    every_s: float = 2.0,
    finished: Callable[[], bool] = lambda: False,
) -> StreamingResponse:
    """The stream: fragments now, then those that changed every ``every_s``, until the client
    leaves, the session ends, ``finished()`` says so (a job that ended), or ``MAX_STREAM_S``."""

    async def events() -> AsyncIterator[bytes]:
        yield f"retry: {RETRY_MS}\n\n".encode()
        sent: dict[str, str] = {}
        started = checked = time.monotonic()
        while True:
            for element_id, html in await fragments():
                if sent.get(element_id) != html:
                    sent[element_id] = html
                    yield fragment_event(element_id, html)
            if finished():
                yield END_EVENT
                return
            now = time.monotonic()
            if now - started >= MAX_STREAM_S:
                return  # EventSource reconnects through the guard
            if now - checked >= SESSION_CHECK_S:
                checked = now
                if await current_session(request, console.gw) is None:
                    yield END_EVENT
                    return
            yield b": keep-alive\n\n"
            if await _gone_within(request, every_s):
                return

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"x-accel-buffering": "no"},
    )


async def _gone_within(request: Request, seconds: float) -> bool:
    """Wait ``seconds``, noticing a client that left meanwhile."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if await request.is_disconnected():
            return True
        await asyncio.sleep(min(0.5, left))
    return await request.is_disconnected()
