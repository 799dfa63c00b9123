"""Many waiters on one process's pub/sub connection (``broker/notify.py``): one shared
subscription per channel, joins and leaves sent in batches, every reply Redis sends read.

Run under uvloop (as the API runs) on the test's own redis-server, which one test restarts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvloop
from redis.asyncio import Redis

from anygate.broker.connection import create_redis
from anygate.broker.notify import RESYNC, Subscriptions
from anygate.config import RedisConfig
from anygate.ops.embedded_redis import EmbeddedRedis

CONFIRM_S = 5.0
WAITERS = 600
CHANNELS = 300


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


def _client(server: EmbeddedRedis) -> Redis:
    return create_redis(RedisConfig(url=server.url), wait_s=CONFIRM_S)


async def _subscribed(server: EmbeddedRedis) -> int:
    """Channels subscribed on the server, by anyone."""
    async with Redis.from_url(server.url) as plain:
        return len(await plain.pubsub_channels())


async def _until(check: object, what: str, limit_s: float = 5.0) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        assert callable(check)
        if await check():
            return
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


def test_many_waiters_on_many_channels_are_all_woken_on_one_subscription_each(
    own_redis: EmbeddedRedis,
) -> None:
    async def scenario() -> None:
        redis = _client(own_redis)
        subs = Subscriptions(redis, confirm_s=CONFIRM_S)
        await subs.start()
        ready = asyncio.Event()
        waiting = 0

        async def waiter(i: int) -> str:
            nonlocal waiting
            async with subs.subscribe(f"job:{i % CHANNELS}") as queue:
                waiting += 1
                if waiting == WAITERS:
                    ready.set()
                return await asyncio.wait_for(queue.get(), 10)

        try:
            tasks = [asyncio.create_task(waiter(i)) for i in range(WAITERS)]
            await asyncio.wait_for(ready.wait(), 10)
            assert await _subscribed(own_redis) == CHANNELS
            async with Redis.from_url(own_redis.url) as plain, plain.pipeline() as pipe:
                for c in range(CHANNELS):
                    pipe.publish(f"job:{c}", f"end {c}")
                assert await pipe.execute() == [1] * CHANNELS  # one subscriber each: ours
            got = await asyncio.gather(*tasks)
            assert got == [f"end {i % CHANNELS}" for i in range(WAITERS)]
            await _until(lambda: _nothing_subscribed(own_redis), "channels left subscribed")
            assert subs._channels == {}
        finally:
            await subs.close()
            await redis.aclose()

    uvloop.run(scenario())


async def _nothing_subscribed(server: EmbeddedRedis) -> bool:
    return await _subscribed(server) == 0


def test_a_waiter_that_leaves_mid_wait_releases_the_channel_and_its_peer_keeps_it(
    own_redis: EmbeddedRedis,
) -> None:
    """A client that disconnects cancels its request's task: the channel stays subscribed for
    the waiter still on it, and is unsubscribed once that one leaves too."""

    async def scenario() -> None:
        redis = _client(own_redis)
        subs = Subscriptions(redis, confirm_s=CONFIRM_S)
        await subs.start()
        joined = asyncio.Event()

        async def leaver() -> None:
            async with subs.subscribe("job:x"):
                joined.set()
                await asyncio.sleep(60)

        try:
            async with subs.subscribe("job:x") as stayer:
                task = asyncio.create_task(leaver())
                await joined.wait()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                async with Redis.from_url(own_redis.url) as plain:
                    assert await plain.publish("job:x", "still here") == 1
                assert await asyncio.wait_for(stayer.get(), 5) == "still here"
                assert len(subs._channels["job:x"].queues) == 1
            await _until(lambda: _nothing_subscribed(own_redis), "the left channel is subscribed")
        finally:
            await subs.close()
            await redis.aclose()

    uvloop.run(scenario())


def test_closing_leaves_no_connection_with_unread_replies_for_the_next_command(
    own_redis: EmbeddedRedis,
) -> None:
    """The regression of a shared, batched version: closing handed the subscription connection
    back to the pool with confirmations unread, and the next command read 'subscribe'. Closed
    here with 200 confirmations in flight, then every connection of the client's pool is used."""

    async def scenario() -> None:
        redis = _client(own_redis)
        subs = Subscriptions(redis, confirm_s=CONFIRM_S)
        await subs.start()
        tasks = [asyncio.create_task(_join_briefly(subs, f"job:{i}")) for i in range(200)]
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # the SUBSCRIBE is written, its replies not read
        await subs.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            pool = redis.connection_pool
            assert subs._conn not in pool._available_connections  # type: ignore[attr-defined]
            assert subs._conn not in pool._in_use_connections  # type: ignore[attr-defined]
            await redis.set("k", "v")
            replies = await asyncio.gather(*(redis.get("k") for _ in range(50)))
            assert replies == ["v"] * 50
            assert await redis.ping() is True
            await _until(lambda: _nothing_subscribed(own_redis), "closed, still subscribed")
        finally:
            await redis.aclose()

    uvloop.run(scenario())


async def _join_briefly(subs: Subscriptions, channel: str) -> None:
    async with subs.subscribe(channel):
        await asyncio.sleep(0.01)


def test_waiters_across_a_redis_restart_are_told_to_resync_and_hear_later_messages(
    tmp_path: Path,
) -> None:
    """Messages published while Redis was away are gone: every waiting subscriber gets RESYNC
    once its channel is confirmed again (it then reads the job's log), none hangs."""
    server = EmbeddedRedis(tmp_path / "redis").start()
    port, n = server.port, 50

    async def scenario() -> None:
        nonlocal server
        redis = _client(server)
        subs = Subscriptions(redis, confirm_s=CONFIRM_S)
        await subs.start()
        try:
            async with _AllSubscribed(subs, [f"job:{i}" for i in range(n)]) as queues:
                server.stop(hard=True)
                await asyncio.sleep(0.5)
                server = EmbeddedRedis(tmp_path / "redis", port=port).start()
                got = await asyncio.wait_for(asyncio.gather(*(q.get() for q in queues)), 15)
                assert got == [RESYNC] * n
                async with Redis.from_url(server.url) as plain:
                    assert await plain.publish("job:7", "after") == 1
                assert await asyncio.wait_for(queues[7].get(), 5) == "after"
                assert all(q.empty() for q in queues)
        finally:
            await subs.close()
            await redis.aclose()

    try:
        uvloop.run(scenario())
    finally:
        server.stop()


class _AllSubscribed:
    """Subscribes to every channel at once (their confirmations awaited together)."""

    def __init__(self, subs: Subscriptions, channels: list[str]) -> None:
        self._cms = [subs.subscribe(c) for c in channels]

    async def __aenter__(self) -> list[asyncio.Queue[str]]:
        return list(await asyncio.gather(*(cm.__aenter__() for cm in self._cms)))

    async def __aexit__(self, *exc: object) -> None:
        for cm in self._cms:
            await cm.__aexit__(None, None, None)
