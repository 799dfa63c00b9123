"""A synchronous call through the queue: enqueue an interactive job and wait on its events.

The caller waits on its API process's reply channel (``api/replies.py``), registered before the
job is enqueued, so no event can slip past. While
the caller waits, a watcher listens for its disconnect: a caller that leaves before anything was
streamed to it cancels its job (``server.cancel_on_disconnect``), so abandoned requests never
reach the provider. Events arrive through pub/sub as the worker appends them; each streamed
chunk is relayed the moment it arrives. If the reply channel was lost for a while (Redis
restarted), the call reads what it missed from the job's log and goes on, each event once; while
that read fails (Redis confirms subscriptions before it has loaded its data, and may go away
again), it is tried again and the live events meanwhile are dropped, the log holding them too. In
strict durability mode a terminal event waits for the gateway's durability barrier before the
caller hears of it (``broker/durability.py``).

A streamed call that has had nothing to relay for ``server.keepalive_s`` gets a ``keepalive``
event (not in the job's log), so that its surface can send bytes a proxy's idle timer sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import structlog
from redis.exceptions import RedisError
from starlette.requests import Request

from anygate.api.gateway import Gateway
from anygate.api.replies import Mailbox
from anygate.broker import JobEvent, NewJob, new_job_id, stream_id_key
from anygate.broker.errors import (
    AnygateError,
    ServiceUnavailableError,
    SyncCallTimeoutError,
    job_error,
)
from anygate.broker.notify import RESYNC
from anygate.broker.redis_link import is_outage

log = structlog.get_logger(__name__)


class ClientGoneError(Exception):
    """The caller disconnected; its job was cancelled if policy says so."""


GONE = ""
"""Put in a call's queue by its disconnect watcher (no real event is empty)."""

TIMED_OUT = "\0"
"""Put in a call's queue when no event has come for ``server.sync_timeout_s``."""

KEEPALIVE = "\x03"
"""Put in a streamed call's queue when nothing has come for ``server.keepalive_s``."""

KEEPALIVE_EVENT = JobEvent("", "keepalive", "")
"""What a streamed call's relay renders as its surface's keep-alive bytes."""

INTERRUPTED = "interrupted"
"""A streamed call's own last event (not in the job's log): the stream ends with the error it
carries, while the job goes on and its result can be fetched later."""

_SENTINELS = frozenset({GONE, TIMED_OUT, KEEPALIVE, RESYNC})

RESYNC_RETRY_S = 0.25
"""How soon a resync whose read of the job's log failed is tried again."""


class SyncCall:
    """``async with SyncCall(gw, request, job) as call: async for event in call.events(): …``"""

    def __init__(self, gw: Gateway, request: Request, job: NewJob) -> None:
        self.gw = gw
        self.request = request
        self.job_id = new_job_id(gw.broker.keys.shard_of_pool(job.pool))
        self.job = dataclasses.replace(job, reply_to=gw.replies.instance)
        self.streamed = False
        self._queue: Mailbox | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._last_event = 0.0
        """When the last real event came: ``sync_timeout_s`` counts from here."""
        self._last_sound = 0.0
        """When the caller last heard anything, keep-alives included."""
        self._left = False
        self._cursor: tuple[int, int] | None = None
        """After a resync: the id of the last event handed on (later duplicates are dropped)."""
        self._last_id: str | None = None
        self._resync_retry: asyncio.TimerHandle | None = None
        """Set while a resync is due: its read failed, and is tried again when this fires."""

    async def __aenter__(self) -> SyncCall:
        # Registered before the job exists, so not even its first event can be missed.
        self._queue = self.gw.replies.register(self.job_id)
        try:
            await self.gw.broker.enqueue(self.job, self.job_id)
        except BaseException:
            self.gw.replies.unregister(self.job_id)
            raise
        self._watcher = asyncio.create_task(self._watch_disconnect())
        # One lazy timer per call, not a ``wait_for`` per event (a measurable cost): when it
        # fires early because events kept coming, it sets itself again for the remainder.
        loop = asyncio.get_running_loop()
        self._last_event = loop.time()
        self._deadline = loop.call_later(self.gw.config.server.sync_timeout_s, self._expire)
        if self.job.stream:
            self._ticker = loop.call_later(self.gw.config.server.keepalive_s, self._tick)
        return self

    def _tick(self) -> None:
        """A streamed call with nothing to relay for ``keepalive_s`` gets a keep-alive."""
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        every = self.gw.config.server.keepalive_s
        idle = loop.time() - max(self._last_event, self._last_sound)
        if idle >= every:
            self._queue.put_nowait(KEEPALIVE)
            self._last_sound = loop.time()
            idle = 0.0
        self._ticker = loop.call_later(every - idle, self._tick)

    def _expire(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        left = self.gw.config.server.sync_timeout_s - (loop.time() - self._last_event)
        if left > 0:
            self._deadline = loop.call_later(left, self._expire)
        else:
            self._queue.put_nowait(TIMED_OUT)

    async def __aexit__(self, *exc_info: object) -> None:
        self.stop_watching()
        if self._deadline is not None:
            self._deadline.cancel()
        if self._ticker is not None:
            self._ticker.cancel()
        if self._resync_retry is not None:
            self._resync_retry.cancel()
        self.gw.replies.unregister(self.job_id)

    def stop_watching(self) -> None:
        """Stop listening for the caller's disconnect (the call is over)."""
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None

    async def _watch_disconnect(self) -> None:
        while True:
            message = await self.request.receive()
            if message["type"] == "http.disconnect":
                assert self._queue is not None
                self._queue.put_nowait(GONE)
                return

    async def next_event(self) -> JobEvent:
        """The next event; cancels the job and raises ``ClientGoneError`` if the caller left."""
        assert self._queue is not None
        while True:
            message = await self._queue.get()
            event = await self._event(message)
            if event is not None:
                return event

    def ready_event(self) -> JobEvent | None:
        """An event that has already arrived, without waiting (None if there is none); lets a
        relay write a burst of chunks in one go."""
        assert self._queue is not None
        while self._queue:
            message = self._queue.get_nowait()
            if message in _SENTINELS:
                self._queue.push_front(message)  # handled by the next next_event()
                return None
            event = self._accept(message)
            if event is not None:
                self._last_event = asyncio.get_running_loop().time()
                return event
        return None

    def _accept(self, message: str) -> JobEvent | None:
        """The event, or None when a resync already handed it on or is still due (the log
        holds every event published, so the resync's read brings this one in its turn)."""
        if self._resync_retry is not None:
            return None
        event = JobEvent.from_message(message)
        if self._cursor is not None:
            key = stream_id_key(event.id)
            if key <= self._cursor:
                return None
            self._cursor = key
        self._last_id = event.id
        return event

    async def _event(self, message: str) -> JobEvent | None:
        if message == KEEPALIVE:
            return KEEPALIVE_EVENT
        if message == RESYNC:
            await self._resync()
            return None
        if message == TIMED_OUT:
            raise SyncCallTimeoutError(
                "the job did not finish in time; fetch its result later from /v1/jobs/"
                f"{self.job_id}",
            )
        if message == GONE:
            await self.caller_left()
            raise ClientGoneError(self.job_id)
        event = self._accept(message)
        if event is not None:
            self._last_event = asyncio.get_running_loop().time()
        return event

    async def _resync(self) -> None:
        """The reply channel came back after a lost connection: what the job's log holds past
        the last event handed on goes first; anything that also arrives live is dropped.

        The read can fail although the channel is back: Redis confirms a subscription while it
        still loads its data (reads answer ``LOADING``), or goes away again. Giving up then
        would leave a hole in the answer (a chunk published while the channel was down, never
        relayed), so the read is tried again every ``RESYNC_RETRY_S``; live events are dropped
        meanwhile, and keep-alives, the sync timeout and a caller's leaving still come through."""
        assert self._queue is not None
        if self._resync_retry is not None:  # a reconnect's resync came before the retry's
            self._resync_retry.cancel()
            self._resync_retry = None
        try:
            missed = await self.gw.broker.events_after(self.job_id, self._last_id)
        except Exception as exc:
            if not is_outage(exc):
                raise
            loop = asyncio.get_running_loop()
            self._resync_retry = loop.call_later(RESYNC_RETRY_S, self._queue.put_nowait, RESYNC)
            return
        if self._cursor is None:
            self._cursor = stream_id_key(self._last_id) if self._last_id else (-1, -1)
        for event in reversed([e for e in missed if e.type != "queued"]):
            self._queue.push_front(event.to_message())

    async def caller_left(self) -> None:
        """The caller went away: cancel its job if policy says so (once, however often called)."""
        if self._left:
            return
        self._left = True
        policy = self.gw.config.server.cancel_on_disconnect
        if policy == "always" or (policy == "before_stream" and not self.streamed):
            try:
                await self.gw.broker.cancel(
                    self.job.tenant, self.job_id, reason="client_disconnected"
                )
            except Exception as exc:
                if not is_outage(exc):
                    raise
                # Redis is away: the job runs on, and its result waits to be fetched
                log.info(
                    "could not cancel a left caller's job",
                    job_id=self.job_id,
                    error=type(exc).__name__,
                )

    async def confirm_durable(self) -> None:
        """Before the caller hears that its job ended: in strict mode, wait until Redis has the
        end on disk (a 503 naming the job when Redis cannot say so)."""
        try:
            await self.gw.barrier()
        except (RedisError, OSError) as exc:
            raise ServiceUnavailableError(
                "the job ended, but Redis could not confirm that its result is on disk; fetch "
                f"it later from /v1/jobs/{self.job_id}",
                retry_after=1,
            ) from exc

    async def bursts(self, first: JobEvent) -> AsyncIterator[list[JobEvent]]:
        """Events from ``first`` on, in bursts of whatever has already arrived, so that a relay
        writes a fast upstream's chunks to the socket together; ends with a terminal event, an
        ``interrupted`` one (nothing came for ``sync_timeout_s``, or strict mode could not
        confirm the end durable: the job's result is fetched later), or early when the caller
        has gone."""
        event = first
        while True:
            burst = [event]
            while not burst[-1].terminal and (more := self.ready_event()) is not None:
                burst.append(more)
            if burst[-1].terminal:
                try:
                    await self.confirm_durable()
                except ServiceUnavailableError as exc:
                    # Relayed as an interruption: the stream ends with an error naming the job,
                    # whose result is then fetched once Redis answers again.
                    log.warning("stream end unconfirmed", job_id=self.job_id, error=exc.message)
                    burst[-1] = interruption(exc)
                    yield burst
                    return
            yield burst
            if burst[-1].terminal or burst[-1].type == INTERRUPTED:
                return
            try:
                event = await self.next_event()
            except ClientGoneError:
                return  # nobody to relay to; the job was cancelled if policy said so
            except SyncCallTimeoutError as exc:  # the response has started: say it in-stream
                event = interruption(exc)

    async def events(self) -> AsyncIterator[JobEvent]:
        """Events until a terminal one (included)."""
        while True:
            event = await self.next_event()
            if event.terminal:
                await self.confirm_durable()
            yield event
            if event.terminal:
                return


def interruption(exc: AnygateError) -> JobEvent:
    """The ``interrupted`` event a stream ends with when it cannot tell its caller the job's
    end (the response has started: an HTTP status is no longer possible)."""
    return JobEvent("", INTERRUPTED, orjson.dumps({"error": exc.to_job_error()}).decode())


Render = Callable[[JobEvent], tuple[list[bytes], bool | None]]
"""Turns one event into the bytes to send and whether the stream ends there: None goes on, True
ends it with the job finished, False ends it early (the job goes on, its result fetchable)."""


async def relay(
    call: SyncCall,
    first: JobEvent,
    owner: contextlib.AsyncExitStack,
    render: Render,
    *,
    tail: Callable[[], bytes] | None = None,
) -> AsyncIterator[bytes]:
    """A streaming call's body, shared by both compatible surfaces: each burst of events in one
    write, then ``tail`` (a closing bracket); leaving early cancels the job if policy says so.
    ``owner`` holds the entered call (``open_stream`` hands it over) and is closed at the end."""
    finished = False
    try:
        async for burst in call.bursts(first):
            out: list[bytes] = []
            end: bool | None = None
            for event in burst:
                if event.type == "chunk":
                    call.streamed = True  # the caller has part of an answer now
                pieces, end = render(event)
                out += pieces
                if end is not None:
                    finished = end
                    break
            if out:
                yield b"".join(out)
            if end is not None:
                break
        if tail is not None:
            yield tail()
    finally:
        if not finished:
            await call.caller_left()
        await owner.aclose()


def outcome(event: JobEvent) -> dict[str, Any]:
    """The result of a terminal event, or the error it carries as an ``AnygateError``
    (decoded by ``broker.errors.job_error``, next to the encoder the workers use)."""
    data = orjson.loads(event.data)
    if event.type == "completed":
        result: dict[str, Any] = data["result"]
        return result
    raise job_error(event.type, data.get("error") or {})
