"""Submits of one event-loop turn share one script call (``enqueue-2.lua``), on a real Redis:
each job sees the ones before it as if queued alone (its place, its tenant's queued cap, an
idempotency key used twice), the pool's counts are exact, and one job's error reaches its caller
alone."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from redis.asyncio import Redis

from anygate.broker import Broker, Enqueued
from anygate.broker.errors import QueueFullError
from anygate.broker.script_calls.enqueue import EnqueueArgs, EnqueueError, EnqueueGroup
from anygate.config import Priority, TenantQuotas
from tests.integration.helpers import enqueue


def count_calls(broker: Broker) -> list[int]:
    """The number of jobs in each enqueue script call the broker makes."""
    sizes: list[int] = []
    queue: Any = broker.queue
    send = queue._enqueue_many

    async def counting(group: EnqueueGroup, jobs: Sequence[EnqueueArgs]) -> Any:
        sizes.append(len(jobs))
        return await send(group, jobs)

    queue._enqueues._send = counting
    return sizes


async def test_many_submits_in_one_turn_are_one_call_with_exact_places_and_counts(
    broker: Broker, redis: Redis
) -> None:
    sizes = count_calls(broker)
    done: list[Enqueued] = await asyncio.gather(
        *(enqueue(broker, tenant=f"t{i % 2}") for i in range(20))
    )
    assert sizes == [20]
    assert all(e.created for e in done)
    assert [e.place for e in done[0::2]] == list(range(1, 11)), "each sees the ones before it"
    assert [e.place for e in done[1::2]] == list(range(1, 11))
    assert [e.queued_in_pool for e in done] == list(range(1, 21))
    k = broker.keys
    stats = await redis.hgetall(k.stats("openai"))
    assert int(stats["queued"]) == 20
    assert int(stats["q:standard:t0"]) == int(stats["q:standard:t1"]) == 10
    tqueued = await redis.hgetall(k.prefix + "tqueued")
    assert {t: int(n) for t, n in tqueued.items()} == {"t0": 10, "t1": 10}
    counters = await redis.hgetall(k.metrics_jobs)
    assert int(counters["submitted|openai|standard|gpt-4o-mini"]) == 20
    assert await redis.lrange(k.ring("openai", Priority.STANDARD), 0, -1) == ["t0", "t1"]
    # the lanes keep the order of submission; a claim takes them in it, round-robin
    jobs = await broker.claim("openai", "w1", 20)
    assert [j.id for j in jobs] == [e.job_id for e in done]


async def test_the_queued_cap_and_an_idempotency_key_hold_inside_one_call(
    broker: Broker, redis: Redis
) -> None:
    broker.queue._quotas["acme"] = TenantQuotas(max_queued=3)
    sizes = count_calls(broker)
    outcomes = await asyncio.gather(
        enqueue(broker, idempotency_key="k1"),
        enqueue(broker, idempotency_key="k1"),
        enqueue(broker),
        enqueue(broker),
        enqueue(broker),
        enqueue(broker, tenant="globex"),
        return_exceptions=True,
    )
    assert sizes == [6]
    first, again, second, third, refused, other = outcomes
    assert isinstance(first, Enqueued)
    assert isinstance(again, Enqueued)
    assert (again.job_id, again.created) == (first.job_id, False), "the key's job, once"
    assert isinstance(second, Enqueued)
    assert isinstance(third, Enqueued)
    assert isinstance(refused, QueueFullError), "the fourth of a cap of three"
    assert isinstance(other, Enqueued), "another tenant is not affected"
    assert int(await redis.hget(broker.keys.prefix + "tqueued", "acme") or 0) == 3


async def test_one_jobs_error_reaches_its_caller_alone(broker: Broker, redis: Redis) -> None:
    # a tenant index that is not a stream: that tenant's job fails at its first write
    await redis.set(broker.keys.prefix + "tjobs:broken", "not a stream")
    sizes = count_calls(broker)
    outcomes = await asyncio.gather(
        enqueue(broker),
        enqueue(broker, tenant="broken"),
        enqueue(broker),
        return_exceptions=True,
    )
    assert sizes == [3]
    assert isinstance(outcomes[0], Enqueued)
    assert isinstance(outcomes[2], Enqueued)
    assert isinstance(outcomes[1], EnqueueError)
    assert "WRONGTYPE" in str(outcomes[1])
    stats = await redis.hgetall(broker.keys.stats("openai"))
    assert int(stats["queued"]) == 2, "the failed job is not counted"
    assert [e.place for e in (outcomes[0], outcomes[2]) if isinstance(e, Enqueued)] == [1, 2]


@pytest.mark.parametrize("n", [1, 2])
async def test_a_lone_submit_is_a_call_of_one(broker: Broker, n: int) -> None:
    sizes = count_calls(broker)
    for _ in range(n):
        await enqueue(broker)
    assert sizes == [1] * n
