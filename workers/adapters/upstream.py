"""The worker's HTTP client for provider calls, on aiohttp.

Why not httpx, which the API side and the client use: on this path its per-call cost dominated
the worker (bench/, py-spy): ~1.2 ms of CPU per loopback call at concurrency 1 and ~3 ms at 64,
where httpcore scans every pooled connection (a ``poll`` per idle socket) on each request. aiohttp
does the same call for ~0.3 ms at either concurrency. Only this module knows the transport:
adapters see ``post_json`` and ``sse_events`` and the ``Upstream*Error`` family.

Server-sent events are split into lines and events by httpx-sse's decoders, the same code the
``aconnect_sse`` helper runs, fed from aiohttp's byte stream. Events arrive in batches, one per
network read, so a fast upstream's burst of chunks costs the worker one broker call, not one per
chunk.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson
from httpx_sse import ServerSentEvent
from httpx_sse._decoders import SSEDecoder, SSELineDecoder  # pinned: httpx-sse 0.4.x

from anygate.broker.errors import UpstreamTransientError
from anygate.config import ProviderConfig
from anygate.workers.adapters.http import error_for_status, json_object

EventBatches = AsyncIterator[list[ServerSentEvent]]


def transport_error(exc: BaseException) -> UpstreamTransientError:
    """Transport failures: never include the request (its headers carry the key)."""
    kind = type(exc).__name__
    if isinstance(exc, TimeoutError):
        return UpstreamTransientError(f"upstream timed out ({kind})", code="upstream_timeout")
    return UpstreamTransientError(
        f"upstream connection failed ({kind})", code="upstream_connection_error"
    )


class UpstreamClient:
    """One pooled connection set per provider, sized so that no call waits for a connection."""

    def __init__(self, *, timeout_s: float, connect_timeout_s: float, max_connections: int) -> None:
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout_s, sock_read=timeout_s
        )
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def for_provider(cls, provider: ProviderConfig, concurrency: int) -> UpstreamClient:
        return cls(
            timeout_s=provider.timeout_s,
            connect_timeout_s=provider.connect_timeout_s,
            max_connections=concurrency + 8,
        )

    def _open(self) -> aiohttp.ClientSession:
        # Created on first use: a session belongs to the event loop that is running then.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300),
                timeout=self._timeout,
                headers={"user-agent": "anygate"},
                cookie_jar=aiohttp.DummyCookieJar(),
                raise_for_status=False,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post_json(
        self, url: str, body: Mapping[str, Any], headers: Mapping[str, str]
    ) -> dict[str, Any]:
        """POST a JSON body; the provider's error statuses become ``Upstream*Error``s."""
        try:
            async with self._open().post(url, data=orjson.dumps(body), headers=headers) as resp:
                content = await resp.read()
                if resp.status != 200:
                    raise error_for_status(resp.status, content, resp.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise transport_error(exc) from None
        return json_object(content, what="body", code="malformed_response")

    @contextlib.asynccontextmanager
    async def sse_events(
        self, url: str, body: Mapping[str, Any], headers: Mapping[str, str]
    ) -> AsyncIterator[EventBatches]:
        """POST a JSON body and iterate the server-sent events of a 200 answer, a batch per
        network read; an error status raises as ``post_json`` does, a broken stream is
        transient."""
        try:
            async with self._open().post(url, data=orjson.dumps(body), headers=headers) as resp:
                if resp.status != 200:
                    raise error_for_status(resp.status, await resp.read(), resp.headers)
                media_type = resp.headers.get("content-type", "").partition(";")[0].strip()
                if media_type != "text/event-stream":
                    raise UpstreamTransientError(
                        f"upstream answered a stream request with {media_type or 'no'} content",
                        code="malformed_response",
                    )
                yield _event_batches(resp)
                await _finish_body(resp)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise transport_error(exc) from None


async def _finish_body(resp: aiohttp.ClientResponse) -> None:
    """Read what is left of a stream whose reader stopped at its end marker (``[DONE]``): the
    body's own end follows within microseconds, and a fully read response hands its connection
    back to the pool, where an unfinished one would be closed (a new TCP connection per stream,
    seen in profiles). Bounded: a server that keeps talking loses the connection instead."""
    if resp.content.at_eof():
        return
    with contextlib.suppress(TimeoutError, aiohttp.ClientError):
        async with asyncio.timeout(0.1):
            await resp.content.read()


async def _event_batches(resp: aiohttp.ClientResponse) -> EventBatches:
    text = codecs.getincrementaldecoder("utf-8")(errors="replace")
    lines = SSELineDecoder()
    events = SSEDecoder()
    async for data in resp.content.iter_any():
        batch = [
            event
            for line in lines.decode(text.decode(data))
            if (event := events.decode(line)) is not None
        ]
        if batch:
            yield batch
    # An event not ended by a blank line before the end of the stream is discarded (the SSE
    # rules); a line without its newline still counts.
    tail = [event for line in lines.flush() if (event := events.decode(line)) is not None]
    if tail:
        yield tail
