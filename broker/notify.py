"""One pub/sub connection per process, fanned out to any number of in-process listeners.

Listeners of one channel share one subscription; joins and leaves are sent once per event-loop
turn, all channels in one ``SUBSCRIBE`` and one ``UNSUBSCRIBE`` (``subscription_book.py``). A
waiter whose channel is subscribed already costs Redis no command at all, and leaving never
waits on Redis.

A subscription is only handed out once Redis has confirmed it: a reader that subscribes, then
replays the job's event log, cannot miss an event published in between (the log covers what came
before the confirmation, the channel what came after; duplicates are dropped by event id).

Messages published while the connection was down (Redis restarted) are lost to pub/sub. So when
Redis confirms a channel again after a reconnect, its listeners are told to catch up from the
log: queue listeners get ``RESYNC`` in their queue, callback listeners their ``on_resubscribe``.

The connection is the process's own, made by the client's pool but never taken from it nor
given back: a connection in subscribed mode has replies no other command may read, so closing
disconnects it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from anygate.broker.connection import is_stale
from anygate.broker.redis_link import RedisLink
from anygate.broker.subscription_book import SubscriptionBook, chunked

RESYNC = "\x02"
"""Put in a subscriber's queue when its channel was subscribed again after a lost connection:
messages may have been missed, so read what the log holds (no real message is this)."""

_LINK_ERRORS = (RedisError, ConnectionError, OSError)


@dataclass(eq=False)
class _Channel:
    """A channel's in-process listeners and its one confirmation."""

    confirmed: asyncio.Future[None]
    queues: set[asyncio.Queue[str]] = field(default_factory=set)
    callback: Callable[[str], None] | None = None
    on_resubscribe: Callable[[], None] | None = None

    @property
    def idle(self) -> bool:
        return not self.queues and self.callback is None

    def deliver(self, data: str) -> None:
        if self.callback is not None:
            self.callback(data)
        for queue in self.queues:
            queue.put_nowait(data)

    def resubscribed(self) -> None:
        if self.on_resubscribe is not None:
            self.on_resubscribe()
        for queue in self.queues:
            queue.put_nowait(RESYNC)


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
        self._conn: AbstractConnection = redis.pubsub().connection_pool.make_connection()  # type: ignore[no-untyped-call]
        self._channels: dict[str, _Channel] = {}
        self._book = SubscriptionBook()
        self._ready = False
        """Connected, and every channel of the book sent: the sender may write."""
        self._dirty = asyncio.Event()
        self._has_channels = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._read_forever(), name="pubsub-reader"),
            asyncio.create_task(self._send_forever(), name="pubsub-sender"),
        ]

    async def close(self) -> None:
        """Stop both tasks and disconnect. Each loop also stops on ``_closed``: Python 3.11's
        ``wait_for`` (inside redis-py's writes) can swallow a cancellation that lands as the
        write completes."""
        self._closed = True
        self._dirty.set()
        self._has_channels.set()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        self._ready = False
        await self._conn.disconnect()

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
        entry = self._join(channel)
        entry.callback, entry.on_resubscribe = callback, on_resubscribe
        async with self._within_confirm_s():
            await asyncio.shield(entry.confirmed)

    @contextlib.asynccontextmanager
    async def _within_confirm_s(self) -> AsyncIterator[None]:
        """Redis confirms a subscription within ``confirm_s`` or it is a Redis timeout (a 503
        at the API's edge, an outage to a process's link)."""
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

        Setting up waits at most ``confirm_s`` for Redis's confirmation and raises a Redis
        timeout past it; a subscription that fails to set up leaves nothing behind."""
        queue: asyncio.Queue[str] = asyncio.Queue()
        entry = self._join(channel)
        entry.queues.add(queue)
        try:
            async with self._within_confirm_s():
                await asyncio.shield(entry.confirmed)
            yield queue
        finally:
            self._leave(channel, entry, queue)

    def _join(self, channel: str) -> _Channel:
        entry = self._channels.get(channel)
        if entry is None:
            entry = _Channel(asyncio.get_running_loop().create_future())
            self._channels[channel] = entry
            if self._book.live(channel):  # left and joined again within one turn
                entry.confirmed.set_result(None)
            else:
                self._book.touch(channel)
                self._dirty.set()
        return entry

    def _leave(self, channel: str, entry: _Channel, queue: asyncio.Queue[str]) -> None:
        """Drop a listener; the channel's last one has it unsubscribed by the sender. Never
        waits and never raises: while Redis is away the channel is simply forgotten, so a
        reconnect does not subscribe it again."""
        entry.queues.discard(queue)
        if entry.idle and self._channels.get(channel) is entry:
            del self._channels[channel]
            self._book.touch(channel)
            self._dirty.set()

    async def _send_forever(self) -> None:
        """Send what changed, once per turn of the loop: every join and leave of the turn in
        one SUBSCRIBE and one UNSUBSCRIBE."""
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await asyncio.sleep(0)  # the rest of this turn's joins and leaves
            if self._closed:
                return
            subscribe, unsubscribe = self._book.plan(self._channels.__contains__)
            if subscribe:
                self._has_channels.set()
            if not self._ready or not (subscribe or unsubscribe):
                continue  # not connected: connecting subscribes every channel in the book
            commands = [("SUBSCRIBE", *c) for c in chunked(subscribe)]
            commands += [("UNSUBSCRIBE", *c) for c in chunked(unsubscribe)]
            try:
                async with asyncio.timeout(self._confirm_s):
                    await self._write(commands)
            except Exception as exc:  # any: a dead sender would leave every waiter unconfirmed
                self._link.lost(exc)
                self._ready = False
                await self._conn.disconnect(nowait=True)  # the reader reconnects, resubscribes

    async def _write(self, commands: list[tuple[str, ...]]) -> None:
        """Write commands whose replies the reader reads, a closed connection raising as a
        connection error.

        Under uvloop, writing to a connection the server has closed raises ``RuntimeError``
        ("the handler is closed"), which redis-py passes through as it is."""
        try:
            await self._conn.send_packed_command(
                self._conn.pack_commands(commands), check_health=False
            )
        except RuntimeError as exc:
            if "closed" not in str(exc):
                raise
            raise RedisConnectionError(f"the pub/sub connection is closed: {exc}") from exc

    async def _read_forever(self) -> None:
        while True:
            await self._has_channels.wait()
            if self._closed:
                return
            try:
                await self._connected()
                response: list[Any] | None = await self._conn.read_response(
                    timeout=1.0, disconnect_on_error=False
                )
            except _LINK_ERRORS as exc:
                self._ready = False
                await self._conn.disconnect()
                self._link.lost(exc)  # logged once per outage
                await asyncio.sleep(0.2)
                continue
            if response is not None:
                self._dispatch(response)

    async def _connected(self) -> None:
        """Connect if need be (again, after a lost connection or a Sentinel failover) and
        subscribe every channel in the book on the new connection.

        Read straight off the connection: redis-py's ``PubSub`` wraps every message in health
        checks, a retry helper and a dict (a visible slice of an API process's CPU)."""
        if is_stale(getattr(self._redis, "connection_pool", None), self._conn):
            self._ready = False
            await self._conn.disconnect()  # the master moved (Sentinel): subscribe on the new one
        if self._ready:
            return
        if not self._conn.is_connected:
            await self._conn.connect()  # type: ignore[no-untyped-call]
        channels = self._book.reconnected()
        if channels:
            async with asyncio.timeout(self._confirm_s):
                await self._write([("SUBSCRIBE", *c) for c in chunked(channels)])
        self._ready = True

    def _dispatch(self, response: list[Any]) -> None:
        kind, channel = response[0], response[1]
        if kind == "message":
            entry = self._channels.get(channel)
            if entry is not None:
                entry.deliver(response[2])
        elif kind == "subscribe" and self._book.confirmed(channel):
            entry = self._channels.get(channel)
            if entry is None:
                return
            if not entry.confirmed.done():
                entry.confirmed.set_result(None)
            else:  # confirmed before: subscribed again after a reconnect
                entry.resubscribed()
