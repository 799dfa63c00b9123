"""Calls repeated after a lost reply, and leases around a Redis outage, on a real Redis: our faults
are not the provider's (docs/architecture.md, "Our own faults"). A worker whose call to Redis
got no answer cannot know whether it ran: each script on a job's path must be safe to run twice,
the claim gets its jobs back by its token, and no lease lapses because Redis itself was away."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from anygate.broker import Broker, JobEvent, create_redis
from anygate.broker.worker_registry import RegistryValue
from anygate.config import AnygateConfig
from anygate.ops.embedded_redis import EmbeddedRedis
from tests.integration.helpers import claim_one, enqueue
from tests.support.configs import build_config
from tests.support.eventually import eventually


@pytest.fixture
def short_lease(redis_server: EmbeddedRedis, namespace: str) -> AnygateConfig:
    return build_config(
        redis_server.url,
        namespace,
        queue={
            # reclaims more than 0.9 s apart (3 intervals) would mean Redis was away
            "visibility_timeout_s": 0.4,
            "heartbeat_interval_s": 0.1,
            "reclaim_interval_s": 0.3,
            "max_attempts": 2,
            "attempts_per_deployment": 2,
        },
    )


async def test_a_repeated_append_adds_no_chunk_twice(broker: Broker) -> None:
    await enqueue(broker)
    job = await claim_one(broker)
    assert job is not None
    assert await broker.append(job, "chunk", '{"n":1}', '{"n":2}', first_seq=1)
    # the reply was lost; the worker sends the same call again, now with a third chunk
    assert await broker.append(job, "chunk", '{"n":1}', '{"n":2}', '{"n":3}', first_seq=1)
    assert await broker.append(job, "chunk", '{"n":3}', first_seq=3)
    chunks = [e.data for e in await broker.events_after(job.id, None) if e.type == "chunk"]
    assert chunks == ['{"n":1}', '{"n":2}', '{"n":3}']


async def test_a_refunded_attempt_numbers_its_chunks_afresh(broker: Broker) -> None:
    """A job handed back with its attempt refunded comes back with the same attempt number:
    its new chunks must not be taken for repeats of the old ones."""
    await enqueue(broker)
    job = await claim_one(broker)
    assert job is not None
    await broker.append(job, "chunk", '{"old":1}', first_seq=1)
    await broker.requeue(job, "openai", delay_s=0, reason="worker_shutdown", refund_attempt=True)
    again = await claim_one(broker)
    assert again is not None
    assert again.attempt == job.attempt
    await broker.append(again, "chunk", '{"new":1}', first_seq=1)
    chunks = [e.data for e in await broker.events_after(job.id, None) if e.type == "chunk"]
    assert chunks == ['{"old":1}', '{"new":1}']


async def test_a_claim_repeated_with_its_token_gets_the_same_jobs(broker: Broker) -> None:
    for _ in range(5):
        await enqueue(broker)
    first = await broker.claim("openai", "w1", 2, "tok-a")
    again = await broker.claim("openai", "w1", 2, "tok-a")
    assert [j.id for j in again] == [j.id for j in first]
    assert [(j.attempt, j.body) for j in again] == [(j.attempt, j.body) for j in first]
    fresh = await broker.claim("openai", "w1", 2, "tok-b")
    assert len(fresh) == 2
    assert not {j.id for j in fresh} & {j.id for j in first}, "a new token claims new jobs"
    other = await broker.claim("openai", "w2", 5, "tok-a")
    assert not {j.id for j in other} & {j.id for j in first}, "tokens are per worker"


async def test_a_repeated_claim_leaves_out_jobs_no_longer_its_own(broker: Broker) -> None:
    await enqueue(broker)
    await enqueue(broker)
    first = await broker.claim("openai", "w1", 2, "tok")
    assert await broker.finish(first[0], "openai", succeeded=True, result={})
    await broker.cancel("acme", first[1].id)
    assert await broker.claim("openai", "w1", 2, "tok") == []


async def test_a_lost_delivery_spends_no_attempt_on_the_deployment(
    short_lease: AnygateConfig,
) -> None:
    """A worker that died took a delivery with it: the job's next delivery still has all its
    attempts on its deployment; only deliveries lost again and again (a poison job) fail it."""
    redis = create_redis(short_lease.redis)
    broker = Broker(redis, short_lease)
    try:
        created = await enqueue(broker)
        first = await claim_one(broker, "dies")
        assert first is not None
        assert await eventually(lambda: broker.reclaim("openai"), what="the lease to lapse") == 1
        second = await claim_one(broker, "lives")
        assert second is not None
        assert second.attempt == 2
        assert second.attempts_on_step == 1, "the lost delivery was not the deployment's"
        lapsed = await eventually(lambda: broker.reclaim("openai"), what="the lease to lapse")
        assert lapsed == 1  # max_attempts (lost deliveries) is 2
        record = await broker.get("acme", created.job_id)
        assert record is not None
        assert record.status.value == "failed"
        assert record.error["code"] == "max_attempts_exceeded"
    finally:
        await redis.aclose()


async def test_leases_get_a_grace_after_redis_was_away(short_lease: AnygateConfig) -> None:
    """Nothing reclaimed for a while (Redis paused or restarting): the first reclaim after the
    gap reclaims nothing, and lets live workers heartbeat for one lease before it does."""
    redis = create_redis(short_lease.redis)
    broker = Broker(redis, short_lease)
    try:
        await enqueue(broker)
        job = await claim_one(broker, "alive")
        assert job is not None
        assert await broker.reclaim("openai") == 0  # stamps the pool's clock
        clock = broker.keys.for_pool("openai").clock  # the clock of the pool's shard
        await redis.hset(clock, "tick", int(time.time() * 1000) - 10_000)  # 10 s unanswered
        # Fixed sleeps below are the point: the grace lasts one lease, counted from the gap.
        await asyncio.sleep(0.5)  # the lease has lapsed meanwhile
        assert await broker.reclaim("openai") == -1, "no lease lapses while Redis was away"
        beat = [(job.id, job.attempt)]
        assert await broker.heartbeat("openai", "alive", RegistryValue(0, 1, 1), beat) == []
        await asyncio.sleep(0.2)
        assert await broker.heartbeat("openai", "alive", RegistryValue(0, 1, 1), beat) == []
        assert await broker.reclaim("openai") == -1, "the grace lasts one lease"
        await asyncio.sleep(0.3)
        assert await broker.reclaim("openai") == 0, "renewed by the live worker's heartbeat"
        await asyncio.sleep(0.5)
        assert await broker.reclaim("openai") == 1, "a silent worker's lease lapses as ever"
    finally:
        await redis.aclose()


async def test_a_retried_rate_take_takes_room_once(broker: Broker) -> None:
    first = await broker.take_rate("rpm:x:m", 60_000, 2, "job_1:1", 1)
    again = await broker.take_rate("rpm:x:m", 60_000, 2, "job_1:1", 1)
    assert first.admitted
    assert again.admitted
    assert (await broker.take_rate("rpm:x:m", 60_000, 2, "job_2:1", 1)).admitted
    assert not (await broker.take_rate("rpm:x:m", 60_000, 2, "job_3:1", 1)).admitted


async def test_every_event_says_its_attempt_live_and_replayed(broker: Broker, redis: Redis) -> None:
    """One codec for an event on the wire: what a script publishes decodes to what the log
    replays, attempt included (``JobEvent.from_message`` / ``from_entry``)."""
    created = await enqueue(broker)
    pubsub = redis.pubsub()
    await pubsub.subscribe(broker.keys.job_channel(created.job_id))
    job = await claim_one(broker)
    assert job is not None
    await broker.append(job, "chunk", '{"x":1}', first_seq=1)
    await broker.requeue(job, "openai", delay_s=0, reason="upstream_error", refund_attempt=False)
    again = await claim_one(broker)
    assert again is not None
    await broker.finish(again, "openai", succeeded=True, result={})
    live: list[JobEvent] = []
    deadline = time.monotonic() + 5
    while len(live) < 5 and time.monotonic() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if message is not None:
            live.append(JobEvent.from_message(message["data"]))
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    replayed = [e for e in await broker.events_after(job.id, None) if e.type != "queued"]
    assert live == replayed
    assert [(e.type, e.attempt) for e in replayed] == [
        ("started", 1),
        ("chunk", 1),
        ("retry", 2),
        ("started", 2),
        ("completed", 2),
    ]
    assert all(JobEvent.from_message(e.to_message()) == e for e in replayed)
