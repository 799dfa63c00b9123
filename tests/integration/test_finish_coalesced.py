"""Finishes of one event-loop turn share one script call (``finish-5.lua``), on a real Redis:
each job is still recorded once, by its own attempt, with what the jobs share (the pool's lease
set, in-flight counts, counters, lanes) exact; one job's error reaches its caller alone; and a
worker that dies between two calls leaves the unsent jobs to be reclaimed, the sent ones done."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest
from redis.asyncio import Redis

from anygate.broker import Broker, JobStatus, create_redis
from anygate.broker.script_calls.finish import FinishArgs, FinishError, FinishGroup
from anygate.config import AnygateConfig, Priority
from anygate.ops.embedded_redis import EmbeddedRedis
from tests.integration.helpers import enqueue
from tests.support.configs import build_config
from tests.support.eventually import eventually


def count_calls(broker: Broker) -> list[int]:
    """The number of jobs in each finish script call the broker makes."""
    sizes: list[int] = []
    leases: Any = broker.leases
    send = leases._finish_many

    async def counting(group: FinishGroup, jobs: Sequence[FinishArgs]) -> Any:
        sizes.append(len(jobs))
        return await send(group, jobs)

    leases._finishes._send = counting
    return sizes


async def test_many_finishes_in_one_turn_are_one_call_and_exact(
    broker: Broker, redis: Redis
) -> None:
    for i in range(30):
        await enqueue(broker, tenant=f"t{i % 3}")
    jobs = await broker.claim("openai", "w1", 30)
    assert len(jobs) == 30
    sizes = count_calls(broker)
    outcomes = await asyncio.gather(
        *(broker.finish(j, "openai", succeeded=True, result={"n": j.id}) for j in jobs)
    )
    assert outcomes == [True] * 30
    assert sizes == [30], "one call carried every finish of the turn"
    k = broker.keys
    stats = await redis.hgetall(k.stats("openai"))
    assert int(stats["inflight"]) == 0
    assert "ewma_ms" in stats
    assert await redis.zcard(k.leases("openai")) == 0
    tinflight = await redis.hgetall(k.prefix + "tinflight")
    assert {t: int(n) for t, n in tinflight.items()} == {"t0": 0, "t1": 0, "t2": 0}
    counters = await redis.hgetall(k.metrics_jobs)
    assert int(counters["finished|openai|gpt-4o-mini|succeeded"]) == 30
    for tenant in ("t0", "t1", "t2"):
        assert await redis.exists(k.lane("openai", Priority.STANDARD, tenant)) == 0
    for j in jobs:
        record = await broker.get(j.tenant, j.id)
        assert record is not None
        assert record.status == JobStatus.SUCCEEDED
        assert record.result == {"n": j.id}
        events = [e.type for e in await broker.events_after(j.id, None)]
        assert events[-1] == "completed"


async def test_a_stale_or_repeated_finish_in_the_same_call_is_not_recorded(
    broker: Broker,
) -> None:
    for _ in range(3):
        await enqueue(broker)
    a, b, c = await broker.claim("openai", "w1", 3)
    sizes = count_calls(broker)
    stale = dataclasses.replace(c, attempt=c.attempt + 1)
    outcomes = await asyncio.gather(
        broker.finish(a, "openai", succeeded=True, result={"n": 1}),
        broker.finish(a, "openai", succeeded=True, result={"n": 2}),
        broker.finish(b, "openai", succeeded=False, error={"message": "no", "type": "x"}),
        broker.finish(stale, "openai", succeeded=True, result={}),
    )
    assert outcomes == [True, False, True, False]
    assert sizes == [4]
    record = await broker.get("acme", a.id)
    assert record is not None
    assert record.result == {"n": 1}, "the first finish of the call won"
    failed = await broker.get("acme", b.id)
    assert failed is not None
    assert failed.status == JobStatus.FAILED
    still = await broker.get("acme", c.id)
    assert still is not None
    assert still.status == JobStatus.RUNNING, "the stale attempt changed nothing"
    assert await broker.finish(c, "openai", succeeded=True, result={})


async def test_one_jobs_error_reaches_its_caller_alone(broker: Broker, redis: Redis) -> None:
    for _ in range(2):
        await enqueue(broker)
    a, b = await broker.claim("openai", "w1", 2)
    broken = dataclasses.replace(a, id="job_broken")
    await redis.set(broker.keys.job(broken.id), "not a hash")  # its HMGET fails: WRONGTYPE
    sizes = count_calls(broker)
    outcomes = await asyncio.gather(
        broker.finish(a, "openai", succeeded=True, result={}),
        broker.finish(broken, "openai", succeeded=True, result={}),
        broker.finish(b, "openai", succeeded=True, result={}),
        return_exceptions=True,
    )
    assert sizes == [3]
    assert outcomes[0] is True
    assert outcomes[2] is True
    assert isinstance(outcomes[1], FinishError)
    assert "WRONGTYPE" in str(outcomes[1])
    assert int(await redis.hget(broker.keys.stats("openai"), "inflight") or 0) == 0


@pytest.fixture
def short_lease(redis_server: EmbeddedRedis, namespace: str) -> AnygateConfig:
    return build_config(
        redis_server.url,
        namespace,
        queue={"visibility_timeout_s": 0.3, "heartbeat_interval_s": 0.1, "max_attempts": 3},
    )


async def test_a_worker_dead_between_two_calls_leaves_the_unsent_jobs_reclaimed(
    short_lease: AnygateConfig,
) -> None:
    redis = create_redis(short_lease.redis)
    broker = Broker(redis, short_lease)
    try:
        for _ in range(4):
            await enqueue(broker)
        jobs = await broker.claim("openai", "dying", 4)
        sent, unsent = jobs[:2], jobs[2:]
        assert await asyncio.gather(
            *(broker.finish(j, "openai", succeeded=True, result={}) for j in sent)
        ) == [True, True]
        # the worker dies here: the second call is never made, its leases lapse
        assert await eventually(lambda: broker.reclaim("openai"), what="the leases to lapse") == 2
        again = await broker.claim("openai", "live", 4)
        assert sorted(j.id for j in again) == sorted(j.id for j in unsent)
        assert all(j.attempt == 2 for j in again)
        late = await asyncio.gather(
            *(broker.finish(j, "openai", succeeded=True, result={"late": 1}) for j in jobs)
        )
        assert late == [False] * 4, "neither the finished jobs nor the reclaimed ones again"
        assert await asyncio.gather(
            *(broker.finish(j, "openai", succeeded=True, result={}) for j in again)
        ) == [True, True]
        for j in jobs:
            record = await broker.get("acme", j.id)
            assert record is not None
            assert record.status == JobStatus.SUCCEEDED
            assert record.result == {}
        counters = await redis.hgetall(broker.keys.metrics_jobs)
        assert int(counters["finished|openai|gpt-4o-mini|succeeded"]) == 4
    finally:
        await redis.aclose()
