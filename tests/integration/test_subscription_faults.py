"""Pub/sub subscriptions while Redis is paused or gone: a subscription fails within its bound
and leaves nothing subscribed behind; leaving one on a dead connection raises nothing (under
uvloop, as the API runs, a write to a closed connection raised ``RuntimeError`` out of a
long-poll as an unhandled 500).

Run under uvloop on the test's own redis-server, which the tests pause and kill.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvloop
from redis.asyncio import Redis
from redis.exceptions import TimeoutError as RedisTimeoutError

from anygate.broker.connection import create_redis
from anygate.broker.notify import Subscriptions
from anygate.config import RedisConfig
from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.faults import redis_paused

CONFIRM_S = 1.0


def _close_transport(subs: Subscriptions) -> None:
    writer = subs._conn._writer  # type: ignore[attr-defined]
    assert writer is not None
    writer.transport.abort()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


def _client(server: EmbeddedRedis) -> Redis:
    return create_redis(RedisConfig(url=server.url), wait_s=CONFIRM_S)


async def _numsub(server: EmbeddedRedis, channel: str) -> int:
    async with Redis.from_url(server.url) as plain:
        counts = await plain.pubsub_numsub(channel)
        return int(counts[0][1])


async def _receives(subs: Subscriptions, server: EmbeddedRedis, channel: str) -> str:
    async with subs.subscribe(channel) as queue, Redis.from_url(server.url) as plain:
        await plain.publish(channel, "hello")
        return await asyncio.wait_for(queue.get(), 5)


def test_a_subscription_on_a_paused_redis_fails_in_time_and_leaves_nothing(
    own_redis: EmbeddedRedis,
) -> None:
    async def scenario() -> None:
        redis = _client(own_redis)
        subs = Subscriptions(redis, confirm_s=CONFIRM_S)
        await subs.start()
        try:
            assert await _receives(subs, own_redis, "before") == "hello"
            with redis_paused(own_redis):
                began = time.monotonic()
                with pytest.raises(RedisTimeoutError):
                    async with subs.subscribe("during"):
                        raise AssertionError("a paused Redis confirmed a subscription")
                took = time.monotonic() - began
            assert took < CONFIRM_S + 1.0, f"the failed subscription took {took:.1f}s"
            assert "during" not in subs._channels
            assert await _receives(subs, own_redis, "after") == "hello"
            assert await _numsub(own_redis, "during") == 0
            assert await _numsub(own_redis, "before") == 0
        finally:
            await subs.close()
            await redis.aclose()

    uvloop.run(scenario())


@pytest.mark.parametrize("leave_after_s", [0.0, 1.5], ids=["at-once", "after-the-reader-saw-it"])
def test_leaving_a_subscription_after_redis_died_raises_nothing_and_it_comes_back(
    tmp_path: Path, leave_after_s: float
) -> None:
    """Left at once, the connection's transport is closed before the reader has run (as when
    the loop has seen the server hang up and the reader not yet: the write raised); left
    later, the reader has dropped the connection already (the unsubscribe finds none)."""
    server = EmbeddedRedis(tmp_path / "redis").start()
    port = server.port

    async def scenario() -> None:
        nonlocal server
        redis = _client(server)
        subs = Subscriptions(redis, confirm_s=CONFIRM_S)
        await subs.start()
        try:
            async with subs.subscribe("doomed"):
                server.stop(hard=True)
                if leave_after_s:
                    await asyncio.sleep(leave_after_s)
                else:
                    _close_transport(subs)
            assert "doomed" not in subs._channels
            server = EmbeddedRedis(tmp_path / "redis", port=port).start()
            deadline = time.monotonic() + 10
            while True:
                try:
                    assert await _receives(subs, server, "reborn") == "hello"
                    break
                except RedisTimeoutError:
                    assert time.monotonic() < deadline, "no subscription after the restart"
            assert await _numsub(server, "doomed") == 0
        finally:
            await subs.close()
            await redis.aclose()

    try:
        uvloop.run(scenario())
    finally:
        server.stop()
