"""A synchronous call through the queue: enqueue an interactive job and wait on its events.

The caller's channel is subscribed before the job is enqueued, so no event can slip past. While
the caller waits, a watcher listens for its disconnect: a caller that leaves before anything was
streamed to it cancels its job (``server.cancel_on_disconnect``), so abandoned requests never
reach the provider. Events arrive through pub/sub as the worker appends them; each streamed
chunk is relayed the moment it arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request

from anygate.api.gateway import Gateway
from anygate.broker import JobEvent, NewJob, new_job_id
from anygate.broker.errors import (
    AnygateError,
    InvalidRequestError,
    RateLimitedError,
    ServiceUnavailableError,
    UpstreamError,
)


class ClientGoneError(Exception):
    """The caller disconnected; its job was cancelled if policy says so."""


class SyncCallTimeoutError(AnygateError):
    status = 504
    type = "timeout_error"
    default_code = "gateway_timeout"


class SyncCall:
    """``async with SyncCall(gw, request, job) as call: async for event in call.events(): …``"""

    def __init__(self, gw: Gateway, request: Request, job: NewJob) -> None:
        self.gw = gw
        self.request = request
        self.job = job
        self.job_id = new_job_id()
        self.streamed = False
        self._queue: asyncio.Queue[str] | None = None
        self._subscription: contextlib.AbstractAsyncContextManager[asyncio.Queue[str]] | None = None
        self._gone = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SyncCall:
        channel = self.gw.broker.keys.job_channel(self.job_id)
        self._subscription = self.gw.subscriptions.subscribe(channel)
        self._queue = await self._subscription.__aenter__()
        try:
            await self.gw.broker.enqueue(self.job, self.job_id)
        except BaseException:
            await self._subscription.__aexit__(None, None, None)
            raise
        self._watcher = asyncio.create_task(self._watch_disconnect())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.stop_watching()
        if self._subscription is not None:
            await self._subscription.__aexit__(None, None, None)

    def stop_watching(self) -> None:
        """Hand disconnect detection to the streaming response, which listens for it itself."""
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None

    async def _watch_disconnect(self) -> None:
        while True:
            message = await self.request.receive()
            if message["type"] == "http.disconnect":
                self._gone.set()
                return

    async def next_event(self) -> JobEvent:
        """The next event; cancels the job and raises ``ClientGoneError`` if the caller left."""
        assert self._queue is not None
        get = asyncio.ensure_future(self._queue.get())
        gone = asyncio.ensure_future(self._gone.wait())
        try:
            done, _ = await asyncio.wait(
                {get, gone},
                timeout=self.gw.config.server.sync_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for fut in (get, gone):
                if not fut.done():
                    fut.cancel()
        if get in done:
            return JobEvent.from_message(get.result())
        if gone in done:
            await self.caller_left()
            raise ClientGoneError(self.job_id)
        raise SyncCallTimeoutError(
            f"the job did not finish in time; fetch its result later from /v1/jobs/{self.job_id}",
        )

    async def caller_left(self) -> None:
        policy = self.gw.config.server.cancel_on_disconnect
        if policy == "always" or (policy == "before_stream" and not self.streamed):
            await self.gw.broker.cancel(self.job.tenant, self.job_id, reason="client_disconnected")

    async def events(self) -> AsyncIterator[JobEvent]:
        """Events until a terminal one (included)."""
        while True:
            event = await self.next_event()
            yield event
            if event.terminal:
                return


def outcome(event: JobEvent) -> dict[str, Any]:
    """The result of a terminal event, or the error it carries as an ``AnygateError``."""
    data = orjson.loads(event.data)
    if event.type == "completed":
        result: dict[str, Any] = data["result"]
        return result
    raise job_error(event.type, data.get("error") or {})


def job_error(kind: str, error: dict[str, Any]) -> AnygateError:
    """Map a failed job to the status a synchronous caller should see (SPEC §1)."""
    message = str(error.get("message") or f"the job ended {kind}")
    code = error.get("code")
    if kind == "expired":
        return ServiceUnavailableError(message, code="deadline_exceeded", retry_after=1)
    if kind == "cancelled":
        return ServiceUnavailableError(message, code="cancelled", retry_after=1)
    if error.get("type") == "invalid_request_error":
        return InvalidRequestError(message, code=code)
    if error.get("type") == "rate_limit_error":
        return RateLimitedError(message, code=code, retry_after=1)
    return UpstreamError(message, code=code, upstream_status=error.get("upstream_status"))
