"""Many listeners on one pub/sub connection: channels asked for together go to Redis together,
listeners of a channel share its subscription, leaving never waits, and a channel left and
joined again before Redis answered ends up subscribed (or, left for good, unsubscribed).

Run under uvloop, as the API runs, on the session's redis-server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable

import uvloop
from redis.asyncio import Redis

from anygate.broker.notify import Subscriptions
from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.eventually import eventually

N = 400


async def _subscribed(plain: Redis, name: str) -> int:
    """The ``sub=`` count of the client called ``name`` (the subscription connection)."""
    for client in await plain.client_list():
        if client.get("name") == name:
            return int(client["sub"])
    return -1


async def _numsub(plain: Redis, *channels: str) -> list[int]:
    return [int(count) for _channel, count in await plain.pubsub_numsub(*channels)]


async def _counts_are(counts: Awaitable[object], expected: object) -> bool:
    return await counts == expected


async def _started(redis_url: str) -> tuple[Redis, Redis, Subscriptions]:
    redis = Redis.from_url(redis_url, decode_responses=True, client_name="subs-under-test")
    plain = Redis.from_url(redis_url, decode_responses=True)
    subs = Subscriptions(redis, confirm_s=5)
    await subs.start()
    return redis, plain, subs


def test_many_listeners_share_channels_and_subscribe_in_batches(
    redis_server: EmbeddedRedis,
) -> None:
    """N listeners on N/2 channels (two per channel): one connection holds N/2 subscriptions;
    every listener gets its channel's message once; once all left, nothing stays subscribed."""
    channels = [f"batch:{i}" for i in range(N // 2)]

    async def scenario() -> None:
        redis, plain, subs = await _started(redis_server.url)
        got: dict[int, list[str]] = {}
        entered = asyncio.Event()
        release = asyncio.Event()
        count = 0

        async def listener(i: int) -> None:
            nonlocal count
            async with subs.subscribe(channels[i % len(channels)]) as queue:
                count += 1
                if count == N:
                    entered.set()
                await release.wait()
                got[i] = [await asyncio.wait_for(queue.get(), 5)]
                await asyncio.sleep(0.05)  # anything sent twice would be in the queue by now
                while not queue.empty():
                    got[i].append(queue.get_nowait())

        try:
            tasks = [asyncio.create_task(listener(i)) for i in range(N)]
            await asyncio.wait_for(entered.wait(), 10)
            assert await _subscribed(plain, "subs-under-test") == len(channels)
            assert set(await _numsub(plain, *channels)) == {1}  # one per channel, shared
            release.set()
            for channel in channels:
                await plain.publish(channel, f"to {channel}")
            await asyncio.wait_for(asyncio.gather(*tasks), 10)
            assert got == {i: [f"to {channels[i % len(channels)]}"] for i in range(N)}
            assert subs._listeners == {}
            await eventually(
                lambda: _counts_are(_subscribed(plain, "subs-under-test"), 0),
                what="every channel unsubscribed",
                timeout=5,
            )
        finally:
            await subs.close()
            await redis.aclose()
            await plain.aclose()

    uvloop.run(scenario())


def test_a_channel_left_and_joined_again_before_redis_answered_is_subscribed(
    redis_server: EmbeddedRedis,
) -> None:
    """Join, leave before the confirmation (a cancelled waiter), join again: the second
    listener hears what comes next (its confirmation waits for the last SUBSCRIBE's reply); a
    channel left for good while its SUBSCRIBE was on its way ends up unsubscribed. Left after
    0 to 11 turns of the loop: before the SUBSCRIBE is sent, while it is, after."""

    async def scenario() -> None:
        redis, plain, subs = await _started(redis_server.url)
        try:
            for turns in range(12):
                rejoin, gone = f"rejoin:{turns}", f"gone:{turns}"
                first = asyncio.create_task(_enter_and_hold(subs, rejoin))
                left = asyncio.create_task(_enter_and_hold(subs, gone))
                for _ in range(turns):
                    await asyncio.sleep(0)
                for task in (first, left):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                async with subs.subscribe(rejoin) as queue:
                    await plain.publish(rejoin, "after")
                    assert await asyncio.wait_for(queue.get(), 5) == "after", turns
                await eventually(
                    lambda: _counts_are(_numsub(plain, rejoin, gone), [0, 0]),  # noqa: B023
                    what=f"both channels unsubscribed (left after {turns} turns)",
                    timeout=5,
                )
            assert subs._confirmed == {}
            assert subs._sent == set()
        finally:
            await subs.close()
            await redis.aclose()
            await plain.aclose()

    uvloop.run(scenario())


async def _enter_and_hold(subs: Subscriptions, channel: str) -> None:
    async with subs.subscribe(channel):
        await asyncio.sleep(60)
