"""A TCP proxy for tests that break connections: it listens on a free 127.0.0.1 port, forwards
every connection to a target, and ``cut()`` aborts all the live ones at once (both sides), as a
dropped network or a restarted load balancer would. New connections are still accepted after a
cut, so a client can reconnect through it.

It runs its own event loop in a thread, so both a synchronous and an asynchronous client can
use it, and a test can cut from any thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

from tests.support.processes import free_port

PIPE_BYTES = 64 * 1024


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.accepted = 0
        """Connections accepted so far."""
        self.cuts = 0
        self._live: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=5)

    def cut(self) -> int:
        """Abort every live connection now; how many there were."""
        return asyncio.run_coroutine_threadsafe(self._cut(), self._loop).result(timeout=5)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            upstream_r, upstream_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        self._live.update((client_w, upstream_w))
        try:
            await asyncio.gather(self._pipe(client_r, upstream_w), self._pipe(upstream_r, client_w))
        finally:
            for writer in (client_w, upstream_w):
                self._live.discard(writer)
                writer.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(PIPE_BYTES):
                writer.write(data)
                await writer.drain()
        if not writer.transport.is_closing():
            with contextlib.suppress(OSError):
                writer.write_eof()

    async def _cut(self) -> int:
        live = list(self._live)
        for writer in live:
            writer.transport.abort()
        self._live.clear()
        self.cuts += 1
        return len(live) // 2

    async def _close(self) -> None:
        await self._cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@contextlib.contextmanager
def tcp_proxy(url: str) -> Iterator[TcpProxy]:
    """A proxy in front of ``url`` (``http://host:port``) for the length of the block."""
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"url: expected http://host:port, got {url!r}")
    proxy = TcpProxy(parts.hostname, parts.port)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
