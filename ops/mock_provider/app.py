"""The mock as a raw ASGI callable.

No framework sits between the server and the handlers: the benchmark measures the gateway, so
the mock must cost as little as possible per request. This module owns all I/O: reading the
body, latency, chunk pacing, acting out faults and noticing when the client goes away.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from anygate.ops.mock_provider import (
    azure_http,
    batch_http,
    control,
    gemini_http,
    openai_http,
    vertex_http,
)
from anygate.ops.mock_provider.control import MockState
from anygate.ops.mock_provider.exchange import Exchange, Incoming
from anygate.ops.mock_provider.faults import FaultRule
from anygate.ops.mock_provider.rate_limits import Decision
from anygate.ops.mock_provider.request_log import (
    RequestRecord,
    body_for_log,
    key_fingerprint,
    query_for_log,
)
from anygate.ops.mock_provider.routing import Route, resolve
from anygate.ops.mock_provider.settings import MockSettings

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_CONTROL_HEADERS = [(b"content-type", b"application/json")]


class DropConnectionError(Exception):
    """Raised after the response has started: ASGI's only way to make the server cut the socket.

    `serve` filters this exception out of uvicorn's error log, since the drop is intended.
    """


@dataclass(frozen=True, slots=True)
class _Provider:
    handle: Callable[[Route, Incoming, MockSettings], Exchange]
    facts: Callable[[Route, Incoming], tuple[str | None, bool]]
    fault: Callable[[FaultRule, Incoming], Exchange]
    api_key: Callable[[Incoming], str | None]
    rate_limited: Callable[[Decision, str, Incoming], Exchange]
    rate_headers: Callable[[Decision], list[tuple[bytes, bytes]]]


_PROVIDERS: dict[str, _Provider] = {
    "openai": _Provider(
        openai_http.handle,
        openai_http.request_facts,
        openai_http.fault,
        openai_http.api_key,
        openai_http.rate_limited,
        openai_http.rate_headers,
    ),
    "gemini": _Provider(
        gemini_http.handle,
        gemini_http.request_facts,
        gemini_http.fault,
        gemini_http.api_key,
        gemini_http.rate_limited,
        gemini_http.rate_headers,
    ),
    "azure": _Provider(
        azure_http.handle,
        azure_http.request_facts,
        openai_http.fault,
        azure_http.api_key,
        openai_http.rate_limited,
        openai_http.rate_headers,
    ),
    "vertex": _Provider(
        vertex_http.handle,
        gemini_http.request_facts,
        gemini_http.fault,
        vertex_http.api_key,
        gemini_http.rate_limited,
        gemini_http.rate_headers,
    ),
}


class _ClientWatch:
    """Notices `http.disconnect` while the app waits, so hangs and slow streams end promptly.

    Started only when the app is about to wait: an instant reply never pays for the extra task.
    """

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._task: asyncio.Task[None] | None = None
        self.gone_at: float | None = None

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self.gone_at = time.time()

    def _started(self) -> asyncio.Task[None]:
        if self._task is None:
            self._task = asyncio.ensure_future(self._watch())
        return self._task

    async def sleep(self, seconds: float) -> bool:
        """Wait `seconds`; True means the client left meanwhile and the reply should stop."""
        task = self._started()
        if not task.done():
            await asyncio.wait((task,), timeout=seconds)
        return task.done()

    async def until_gone(self) -> None:
        await asyncio.wait((self._started(),))

    def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()


@dataclass(slots=True)
class _Call:
    """One request's I/O context: what it may wait on, where it writes, how far it got."""

    settings: MockSettings
    watch: _ClientWatch
    send: Send
    status: int | None = None
    completed: bool = False


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None if the client disconnected before sending it."""
    message = await receive()
    if message["type"] == "http.disconnect":
        return None
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    parts = [body]
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


async def _send_unary(
    send: Send,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class MockApp:
    """ASGI entry point; `state` is exposed so in-process tests can inspect or tweak it."""

    def __init__(self, settings: MockSettings) -> None:
        self.state = MockState(settings)
        self._desk = batch_http.BatchDesk(self.state.batches, self.state.log)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await _lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        if path.startswith(control.PREFIX):
            raw = await _read_body(receive)
            if raw is not None:
                status, body = control.handle(self.state, method, path, scope["query_string"], raw)
                await _send_unary(send, status, _CONTROL_HEADERS, body)
            return
        record = self.state.log.start(method, path, time.time())
        # One settings snapshot per request, even if the control API swaps them meanwhile.
        call = _Call(self.state.settings, _ClientWatch(receive), send)
        try:
            raw = await _read_body(receive)
            if raw is None:
                call.watch.gone_at = time.time()
                return
            exchange, fault = self._plan(scope, call.settings, raw, record)
            await _deliver(exchange, fault, call)
        finally:
            call.watch.close()
            record.status = call.status
            record.finished_at = time.time()
            if call.watch.gone_at is not None and not call.completed:
                record.aborted = True
                record.aborted_at = call.watch.gone_at

    def _plan(
        self, scope: Scope, settings: MockSettings, raw: bytes, record: RequestRecord
    ) -> tuple[Exchange, FaultRule | None]:
        """Answer, apply the rate limits and pick the fault; the record learns all of it."""
        now = record.arrived_at = time.time()
        incoming, provider, exchange = _answer(scope, settings, raw, record, self._desk)
        if not exchange.plannable:
            return exchange, None
        limiter, limiter_key = self.state.limiter, None
        if exchange.cost is not None:
            record.tokens = exchange.cost
            if limiter.limits.enabled:
                limiter_key = _limiter_key(record, settings)
                decision = limiter.check(limiter_key, exchange.cost, now)
                now = record.arrived_at = decision.at
                if not decision.admitted:
                    record.tokens = 0
                    record.rate_limited = decision.refused_by
                    return provider.rate_limited(decision, record.model or "", incoming), None
                exchange.headers.extend(provider.rate_headers(decision))
        fault = self.state.faults.select(
            model=record.model,
            path=record.path,
            fault_rate=settings.fault_rate,
            fault=settings.fault,
        )
        if fault is None:
            return exchange, None
        # A faulted answer reports no usage: the request still counts, but bills no tokens.
        record.fault = fault.fault
        record.tokens = 0
        if limiter_key is not None:
            limiter.settle(limiter_key, now, 0)
        if fault.status is not None:
            return provider.fault(fault, incoming), None
        return exchange, fault


def _answer(
    scope: Scope,
    settings: MockSettings,
    raw: bytes,
    record: RequestRecord,
    desk: batch_http.BatchDesk,
) -> tuple[Incoming, _Provider, Exchange]:
    """Route and plan the provider's answer; the record learns provider, model, key and body."""
    path = record.path
    authorization = goog_api_key = azure_api_key = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value
        elif name == b"x-goog-api-key":
            goog_api_key = value
        elif name == b"api-key":
            azure_api_key = value
    incoming = Incoming(
        method=record.method,
        path=path,
        query_string=scope["query_string"],
        authorization=authorization,
        goog_api_key=goog_api_key,
        raw_body=raw,
        request_id=record.id,
        headers=scope["headers"],
        azure_api_key=azure_api_key,
    )
    gemini_credentials = goog_api_key is not None or (
        path.startswith("/v1/models") and incoming.query("key") is not None
    )
    batch_route = batch_http.resolve(
        record.method, path, gemini_credentials=goog_api_key is not None
    )
    if batch_route is not None:
        route = batch_route.route
        provider = _PROVIDERS[route.provider]
        exchange = batch_http.handle(batch_route, incoming, settings, desk)
    else:
        route = resolve(record.method, path, gemini_credentials=gemini_credentials)
        provider = _PROVIDERS[route.provider]
        exchange = provider.handle(route, incoming, settings)
    record.provider = route.provider
    record.model, record.stream = provider.facts(route, incoming)
    record.body = body_for_log(incoming.parsed_or_none(), raw)
    record.key_fingerprint = key_fingerprint(provider.api_key(incoming))
    record.query = query_for_log(incoming.query_string)
    record.auth = _presented(incoming)
    return incoming, provider, exchange


def _presented(incoming: Incoming) -> str | None:
    """Which kind of credential came, for the log (never the credential)."""
    if incoming.azure_api_key is not None:
        return "api-key"
    if incoming.authorization is not None:
        return "bearer"
    if incoming.goog_api_key is not None:
        return "x-goog-api-key"
    return "key" if incoming.query("key") is not None else None


def _limiter_key(record: RequestRecord, settings: MockSettings) -> str:
    """Limits are per provider account (one key string at two providers is two accounts)."""
    key = f"{record.provider}:{record.key_fingerprint}"
    return f"{key}:{record.model}" if settings.rate_limit_per_model else key


async def _deliver(exchange: Exchange, fault: FaultRule | None, call: _Call) -> None:
    """Send the planned answer with the configured pacing, acting out a connection fault."""
    kind = fault.fault if fault is not None else None
    watch, settings = call.watch, call.settings
    if kind == "hang":
        await watch.until_gone()
        return
    if (
        exchange.plannable
        and settings.latency_ms > 0
        and await watch.sleep(settings.latency_ms / 1000)
    ):
        return
    if exchange.frames is None:
        await _deliver_unary(exchange, kind, call)
        return
    await call.send(
        {"type": "http.response.start", "status": exchange.status, "headers": exchange.headers}
    )
    call.status = exchange.status
    frames = exchange.frames
    stop_at = len(frames)
    if fault is not None and kind in ("drop", "malformed"):
        stop_at = min(fault.chunks_before_fault, len(frames) - 1)
    delay = settings.chunk_delay_ms / 1000
    for index in range(stop_at):
        if index and delay > 0 and await watch.sleep(delay):
            return
        await call.send({"type": "http.response.body", "body": frames[index], "more_body": True})
    if kind == "drop":
        raise DropConnectionError
    tail = b""
    if kind == "malformed":
        if stop_at and delay > 0 and await watch.sleep(delay):
            return
        tail = exchange.malformed_frame(stop_at)
    await call.send({"type": "http.response.body", "body": tail, "more_body": False})
    call.completed = True


async def _deliver_unary(exchange: Exchange, kind: str | None, call: _Call) -> None:
    call.status = exchange.status
    body = exchange.body
    if kind == "drop":
        # Headers promise the full body, then the socket closes before any of it.
        headers = [*exchange.headers, (b"content-length", str(len(body)).encode())]
        await call.send(
            {"type": "http.response.start", "status": exchange.status, "headers": headers}
        )
        raise DropConnectionError
    if kind == "malformed":
        body = body[: len(body) // 2]
    await _send_unary(call.send, exchange.status, exchange.headers, body)
    call.completed = True


def create_app(settings: MockSettings) -> MockApp:
    """Build the ASGI app; each call has its own state, so tests can run several side by side."""
    return MockApp(settings)
