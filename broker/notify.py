"""One pub/sub connection per process, fanned out to any number of in-process listeners.

A subscription is only handed out once Redis has confirmed it: a reader that subscribes, then
replays the job's event log, cannot miss an event published in between (the log covers what came
before the confirmation, the channel what came after; duplicates are dropped by event id).

Every listener of a channel shares one subscription, and joining or leaving never waits on
another listener: the channels asked for (or given up) while the event loop runs one batch of
ready tasks go to Redis in one SUBSCRIBE (one UNSUBSCRIBE), sent by a task of their own. With
2,000 clients waiting on 2,000 jobs, a per-listener SUBSCRIBE under a lock made each job's end
wait behind every other waiter's UNSUBSCRIBE (docs/performance.md, "Waiting clients").

Messages published while the connection was down (Redis restarted) are lost to pub/sub. So when
Redis confirms a channel again after a reconnect, its listeners are told to catch up from the
log: queue listeners get ``RESYNC`` in their queue, callback listeners their ``on_resubscribe``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
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

SendErrors = (RedisError, ConnectionError, OSError)


def _retrieved(fut: asyncio.Future[None]) -> None:
    """A failed confirmation whose waiters all timed out is not an unretrieved exception."""
    if not fut.cancelled():
        fut.exception()


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
        """Only for its connection (taken from the client's pool, released on close)."""
        self._listeners: dict[str, set[asyncio.Queue[str]]] = {}
        self._callbacks: dict[str, Callable[[str], None]] = {}
        self._resubscribed: dict[str, Callable[[], None]] = {}
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        """A wanted channel's confirmation (kept while its UNSUBSCRIBE is not sent yet: a
        listener joining meanwhile keeps the subscription as it is)."""
        self._sent: set[str] = set()
        """Channels SUBSCRIBEd on the connection and not UNSUBSCRIBEd: a reconnect subscribes
        exactly these again."""
        self._replies_due: dict[str, int] = {}
        """SUBSCRIBE replies still to come per channel: a confirmation counts only once the
        last one is in (a channel left and joined again before Redis answered the first)."""
        self._to_subscribe: dict[str, None] = {}
        self._to_unsubscribe: dict[str, None] = {}
        self._flush_wanted = asyncio.Event()
        self._connect_lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._has_channels = asyncio.Event()

    async def start(self) -> None:
        self._pubsub = self._redis.pubsub()
        self._reader = asyncio.create_task(self._read_forever(), name="pubsub-reader")
        self._flusher = asyncio.create_task(self._flush_forever(), name="pubsub-flusher")

    async def close(self) -> None:
        for task in (self._flusher, self._reader):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
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
        self._callbacks[channel] = callback
        if on_resubscribe is not None:
            self._resubscribed[channel] = on_resubscribe
        async with self._within_confirm_s():
            await asyncio.shield(self._want(channel))

    @contextlib.asynccontextmanager
    async def _within_confirm_s(self) -> AsyncIterator[None]:
        """Setting up a subscription (the SUBSCRIBE, Redis's confirmation) takes at most
        ``confirm_s``; past it, a Redis timeout (a 503 at the API's edge, an outage to a
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

        Setting up waits at most ``confirm_s`` in all (the SUBSCRIBE, Redis's confirmation)
        and raises a Redis timeout past it; a subscription that fails to set up leaves nothing
        behind. Leaving never waits: the channel's last listener only schedules its
        UNSUBSCRIBE."""
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._listeners.setdefault(channel, set()).add(queue)
        try:
            async with self._within_confirm_s():
                await asyncio.shield(self._want(channel))
            yield queue
        finally:
            self._remove(channel, queue)

    def _want(self, channel: str) -> asyncio.Future[None]:
        """The confirmation of ``channel``, its SUBSCRIBE scheduled unless asked for already
        (or still subscribed: an UNSUBSCRIBE not sent yet is simply dropped)."""
        confirmed = self._confirmed.get(channel)
        if confirmed is not None:
            self._to_unsubscribe.pop(channel, None)
            return confirmed
        confirmed = asyncio.get_running_loop().create_future()
        confirmed.add_done_callback(_retrieved)
        self._confirmed[channel] = confirmed
        self._to_subscribe[channel] = None
        self._flush_wanted.set()
        return confirmed

    def _remove(self, channel: str, queue: asyncio.Queue[str]) -> None:
        """Drop a listener; the channel's last one has it unsubscribed (in the next batch).
        Never raises: while Redis is away the channel is simply forgotten, so a reconnect does
        not subscribe it again."""
        listeners = self._listeners.get(channel)
        if listeners is None:
            return
        listeners.discard(queue)
        if listeners or channel in self._callbacks:
            return
        del self._listeners[channel]
        if channel in self._sent:
            self._to_unsubscribe[channel] = None
            self._flush_wanted.set()
        else:  # never sent (or its SUBSCRIBE failed): nothing to undo on Redis
            self._to_subscribe.pop(channel, None)
            self._confirmed.pop(channel, None)

    async def _flush_forever(self) -> None:
        """Send what listeners asked for since the last batch: one UNSUBSCRIBE, then one
        SUBSCRIBE (Redis answers them in order, so a channel left and joined again within a
        batch or across two ends up subscribed)."""
        while True:
            await self._flush_wanted.wait()
            self._flush_wanted.clear()
            if self._to_unsubscribe:
                await self._unsubscribe(list(self._to_unsubscribe))
            if self._to_subscribe:
                await self._subscribe(list(self._to_subscribe))

    async def _unsubscribe(self, channels: list[str]) -> None:
        self._to_unsubscribe.clear()
        for channel in channels:
            self._sent.discard(channel)
            self._confirmed.pop(channel, None)
        with contextlib.suppress(*SendErrors, TimeoutError):
            async with asyncio.timeout(self._confirm_s):
                await self._send("UNSUBSCRIBE", channels)

    async def _subscribe(self, channels: list[str]) -> None:
        self._to_subscribe.clear()
        try:
            async with asyncio.timeout(self._confirm_s):
                conn = await self._connection()
                # Those still wanted (one left while connecting: nothing to send), marked
                # before the write: one leaving meanwhile schedules the UNSUBSCRIBE, and a
                # reconnect during it subscribes these too.
                channels = [c for c in channels if c in self._confirmed]
                if not channels:
                    return
                for channel in channels:
                    self._to_subscribe.pop(channel, None)
                    self._sent.add(channel)
                    self._replies_due[channel] = self._replies_due.get(channel, 0) + 1
                self._has_channels.set()
                await self._write(conn, "SUBSCRIBE", channels)
        except (*SendErrors, TimeoutError) as exc:
            error = exc if isinstance(exc, RedisError) else RedisConnectionError(str(exc))
            for channel in channels:
                self._sent.discard(channel)
                confirmed = self._confirmed.pop(channel, None)
                if confirmed is not None and not confirmed.done():
                    confirmed.set_exception(error)

    async def _connection(self) -> Connection:
        """The subscription connection, connected (a reconnect subscribes ``_sent`` again)."""
        assert self._pubsub is not None, "start() first"
        async with self._connect_lock:
            if self._pubsub.connection is None:
                await self._pubsub.connect()  # type: ignore[no-untyped-call]
                conn = cast("Connection", self._pubsub.connection)
                conn.register_connect_callback(self._on_connect)  # type: ignore[no-untyped-call]
            conn = cast("Connection", self._pubsub.connection)
            if self._stale(conn):
                await conn.disconnect()  # the master moved (Sentinel): subscribe on the new one
            if not conn.is_connected:
                await conn.connect()  # type: ignore[no-untyped-call]
            return conn

    def _stale(self, conn: Connection) -> bool:
        return is_stale(getattr(self._redis, "connection_pool", None), conn)

    async def _on_connect(self, conn: Connection) -> None:
        """Connected again: what was subscribed is subscribed again, replies of the lost
        connection will never come."""
        self._replies_due = dict.fromkeys(self._sent, 1)
        if self._sent:
            await self._write(conn, "SUBSCRIBE", list(self._sent))

    async def _send(self, command: str, channels: list[str]) -> None:
        await self._write(await self._connection(), command, channels)

    @staticmethod
    async def _write(conn: Connection, command: str, channels: list[str]) -> None:
        """Send SUBSCRIBE or UNSUBSCRIBE, a closed connection raising as a connection error.

        No health check: its PING's reply would be read here, where a message may be next.
        Under uvloop, writing to a connection the server has closed raises ``RuntimeError``
        ("the handler is closed"), and one the reader has just dropped ``AttributeError`` (its
        writer is gone), which redis-py passes through as they are; the reader reconnects (and
        subscribes every channel again) on its next read."""
        try:
            await conn.send_command(command, *channels, check_health=False)
        except RuntimeError as exc:
            if "closed" not in str(exc):
                raise
            raise RedisConnectionError(f"the pub/sub connection is closed: {exc}") from exc
        except AttributeError as exc:
            if conn.is_connected:
                raise
            raise RedisConnectionError("the pub/sub connection was dropped") from exc

    async def _read_forever(self) -> None:
        while True:
            await self._has_channels.wait()
            try:
                response = await self._next_response()
            except SendErrors as exc:
                self._link.lost(exc)  # logged once per outage; the next read reconnects
                await asyncio.sleep(0.2)
                continue
            if response is not None:
                self._dispatch(response)

    async def _next_response(self) -> list[Any] | None:
        """The next raw reply on the subscription connection (None after a quiet second).

        Read straight off the connection: redis-py's ``get_message`` wraps every message in
        health checks, a retry helper and a dict (a visible slice of an API process's CPU). On
        a broken connection this reconnects, which subscribes every channel again; a read that
        fails while Redis is down raises and is retried."""
        conn = cast("Connection | None", self._pubsub and self._pubsub.connection)
        if conn is None or not conn.is_connected or self._stale(conn):
            conn = await self._connection()
        try:
            response: list[Any] | None = await conn.read_response(
                timeout=1.0, disconnect_on_error=False
            )
        except SendErrors:
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
            self._confirm(channel)

    def _confirm(self, channel: str) -> None:
        due = self._replies_due.get(channel, 0) - 1
        if due > 0:
            self._replies_due[channel] = due
            return
        self._replies_due.pop(channel, None)
        confirmed = self._confirmed.get(channel)
        if confirmed is None:
            return  # left before Redis answered (its UNSUBSCRIBE follows)
        if not confirmed.done():
            confirmed.set_result(None)
            return
        hook = self._resubscribed.get(channel)  # confirmed before: subscribed after a reconnect
        if hook is not None:
            hook()
        for queue in self._listeners.get(channel, ()):
            queue.put_nowait(RESYNC)
