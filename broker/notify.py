"""One pub/sub connection per process, fanned out to any number of in-process listeners.

A subscription is only handed out once Redis has confirmed it: a reader that subscribes, then
replays the job's event log, cannot miss an event published in between (the log covers what came
before the confirmation, the channel what came after; duplicates are dropped by event id).

Messages published while the connection was down (Redis restarted) are lost to pub/sub. So when
Redis confirms a channel again after a reconnect, its listeners are told to catch up from the
log: queue listeners get ``RESYNC`` in their queue, callback listeners their ``on_resubscribe``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from anygate.broker.connection import is_stale
from anygate.broker.redis_link import RedisLink

RESYNC = "\x02"
"""Put in a subscriber's queue when its channel was subscribed again after a lost connection:
messages may have been missed, so read what the log holds (no real message is this)."""


class Subscriptions:
    def __init__(
        self, redis: Redis, link: RedisLink | None = None, *, confirm_s: float = 5.0
    ) -> None:
        """``link``: the process's, so that a lost subscription connection is one more report
        of the outage the process logs once (``broker/redis_link.py``)."""
        self._redis = redis
        self._link = link or RedisLink("pub/sub")
        self._confirm_s = confirm_s
        """How long a subscription waits for Redis to confirm it before raising (the API's
        ``server.redis_wait_s``: a long-poll or an event stream then answers 503 in time)."""
        self._pubsub: PubSub | None = None
        self._listeners: dict[str, set[asyncio.Queue[str]]] = {}
        self._callbacks: dict[str, Callable[[str], None]] = {}
        self._resubscribed: dict[str, Callable[[], None]] = {}
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        self._lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._has_channels = asyncio.Event()

    async def start(self) -> None:
        self._pubsub = self._redis.pubsub()
        self._reader = asyncio.create_task(self._read_forever(), name="pubsub-reader")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    async def listen(
        self,
        channel: str,
        callback: Callable[[str], None],
        on_resubscribe: Callable[[], None] | None = None,
    ) -> None:
        """Subscribe for the life of the process; ``callback`` runs in the reader for each
        message (it must not block): no queue, no extra task hop on the hot path.
        ``on_resubscribe`` runs when the channel is confirmed again after a lost connection
        (messages may have been missed meanwhile)."""
        async with self._within_confirm_s():
            async with self._lock:
                self._callbacks[channel] = callback
                if on_resubscribe is not None:
                    self._resubscribed[channel] = on_resubscribe
                confirmed = asyncio.get_running_loop().create_future()
                self._confirmed[channel] = confirmed
                await self._send_subscribe(channel)
            await asyncio.shield(confirmed)

    @contextlib.asynccontextmanager
    async def _within_confirm_s(self) -> AsyncIterator[None]:
        """Setting up a subscription (the lock, the SUBSCRIBE, Redis's confirmation) takes at
        most ``confirm_s``; past it, a Redis timeout (a 503 at the API's edge, an outage to a
        process's link)."""
        try:
            async with asyncio.timeout(self._confirm_s):
                yield
        except TimeoutError:
            raise RedisTimeoutError(
                f"Redis did not confirm a subscription within {self._confirm_s:g} s"
            ) from None

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[asyncio.Queue[str]]:
        """A queue of the channel's messages while the block runs.

        Setting up waits at most ``confirm_s`` in all (the lock, the SUBSCRIBE, Redis's
        confirmation) and raises a Redis timeout past it; a subscription that fails to set up
        leaves nothing behind."""
        queue: asyncio.Queue[str] = asyncio.Queue()
        try:
            async with self._within_confirm_s():
                await self._add(channel, queue)
            yield queue
        finally:
            await self._remove(channel, queue)

    async def _add(self, channel: str, queue: asyncio.Queue[str]) -> None:
        async with self._lock:
            listeners = self._listeners.setdefault(channel, set())
            listeners.add(queue)
            if len(listeners) == 1:
                confirmed = asyncio.get_running_loop().create_future()
                self._confirmed[channel] = confirmed
                await self._send_subscribe(channel)
            else:
                confirmed = self._confirmed[channel]
        await asyncio.shield(confirmed)

    async def _remove(self, channel: str, queue: asyncio.Queue[str]) -> None:
        """Drop a listener; the channel's last one unsubscribes it. Never raises: while Redis is
        away the channel is simply forgotten, so a reconnect does not subscribe it again."""
        async with self._lock:
            listeners = self._listeners.get(channel)
            if listeners is None:
                return
            listeners.discard(queue)
            if listeners or channel in self._callbacks:
                return
            del self._listeners[channel]
            self._confirmed.pop(channel, None)
            assert self._pubsub is not None
            try:
                async with asyncio.timeout(self._confirm_s):
                    await self._send(self._pubsub.unsubscribe(channel))
            except (RedisError, ConnectionError, OSError, TimeoutError):
                self._pubsub.channels.pop(channel, None)

    async def _send_subscribe(self, channel: str) -> None:
        assert self._pubsub is not None, "start() first"
        await self._send(self._pubsub.subscribe(channel))
        self._has_channels.set()

    async def _send(self, command: Awaitable[object]) -> None:
        """Send SUBSCRIBE or UNSUBSCRIBE, a closed connection raising as a connection error.

        Under uvloop, writing to a connection the server has closed raises ``RuntimeError``
        ("the handler is closed"), which redis-py passes through as it is; the reader
        reconnects (and subscribes every channel again) on its next read."""
        try:
            await command
        except RuntimeError as exc:
            if "closed" not in str(exc):
                raise
            raise RedisConnectionError(f"the pub/sub connection is closed: {exc}") from exc

    async def _read_forever(self) -> None:
        assert self._pubsub is not None
        while True:
            await self._has_channels.wait()
            try:
                response = await self._next_response()
            except (RedisError, ConnectionError, OSError) as exc:
                self._link.lost(exc)  # logged once per outage; redis-py resubscribes
                await asyncio.sleep(0.2)
                continue
            if response is not None:
                self._dispatch(response)

    async def _next_response(self) -> list[Any] | None:
        """The next raw reply on the subscription connection (None after a quiet second).

        Read straight off the connection: redis-py's ``get_message`` wraps every message in
        health checks, a retry helper and a dict (a visible slice of an API process's CPU). On
        a broken connection this reconnects, and redis-py's connect callback subscribes every
        channel again; a read that fails while Redis is down raises and is retried."""
        assert self._pubsub is not None
        # Exists: the reader waits for the first subscription (redis-py types it as None).
        conn = cast("Connection", self._pubsub.connection)
        try:
            if is_stale(getattr(self._redis, "connection_pool", None), conn):
                await conn.disconnect()  # the master moved (Sentinel): subscribe on the new one
            if not conn.is_connected:
                await conn.connect()  # type: ignore[no-untyped-call]
            response: list[Any] | None = await conn.read_response(
                timeout=1.0, disconnect_on_error=False
            )
        except (RedisError, ConnectionError, OSError):
            await conn.disconnect()
            raise
        return response

    def _dispatch(self, response: list[Any]) -> None:
        kind, channel = response[0], response[1]
        if kind == "message":
            data = response[2]
            callback = self._callbacks.get(channel)
            if callback is not None:
                callback(data)
            for queue in self._listeners.get(channel, ()):
                queue.put_nowait(data)
        elif kind == "subscribe":
            fut = self._confirmed.get(channel)
            if fut is not None and not fut.done():
                fut.set_result(None)
            elif fut is not None:  # confirmed before: subscribed again after a reconnect
                hook = self._resubscribed.get(channel)
                if hook is not None:
                    hook()
                for queue in self._listeners.get(channel, ()):
                    queue.put_nowait(RESYNC)
