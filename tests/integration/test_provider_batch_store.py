"""Jobs parked for a provider batch, taken into one, answered by it or sent back live, on a real
Redis: each job ends once, its counts (queued, in flight, leases) stay exact on every path, and
a cancel or a stale attempt is fenced out."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from anygate.broker import Broker, JobStatus, KeySpace, NewJob, new_job_id
from anygate.broker.models import JobRecord
from anygate.broker.script_calls.finish import FinishArgs, usage_record
from anygate.broker.script_calls.provider_batch import TakenJob, parked_queue
from anygate.config import Priority
from tests.integration.helpers import CHAT, chat_body

QUEUE = parked_queue(CHAT, "openai:gpt-4o-mini")
HOUR_MS = 3_600_000


def pool_keys(broker: Broker) -> KeySpace:
    """Where the pool's counters live (its shard's keys on a cluster)."""
    return broker.keys.on(broker.keys.shard_of_pool("openai"))


def now_ms() -> int:
    return int(time.time() * 1000)


async def park(broker: Broker, *, tenant: str = "acme", cutoff_ms: int | None = None) -> str:
    job_id = new_job_id(broker.keys.shard_of_pool("openai"))
    job = NewJob(
        tenant=tenant,
        pool="openai",
        endpoint=CHAT,
        model="gpt-4o-mini",
        body=chat_body(f"line {job_id}"),
        priority=Priority.BATCH,
        deadline_ms=now_ms() + 24 * HOUR_MS,
        parked_for=QUEUE,
        cutoff_ms=cutoff_ms if cutoff_ms is not None else now_ms() + 23 * HOUR_MS,
    )
    enqueued = await broker.enqueue(job, job_id)
    assert enqueued.created
    return job_id


async def counts(broker: Broker, redis: Redis, tenant: str = "acme") -> dict[str, int]:
    k = broker.keys
    stats = await redis.hgetall(k.stats("openai"))
    return {
        "queued": int(stats.get("queued", 0)),
        "inflight": int(stats.get("inflight", 0)),
        "tqueued": int(await redis.hget(pool_keys(broker).prefix + "tqueued", tenant) or 0),
        "tinflight": int(await redis.hget(pool_keys(broker).prefix + "tinflight", tenant) or 0),
        "leases": int(await redis.zcard(k.leases("openai"))),
        "parked": await broker.provider_batches.parked("openai", QUEUE),
    }


async def record(broker: Broker, job_id: str, tenant: str = "acme") -> JobRecord:
    found = await broker.get(tenant, job_id)
    assert found is not None
    return found


def answer(job: TakenJob, broker: Broker, text: str = "batched") -> FinishArgs:
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    return FinishArgs(
        prefix=broker.provider_batches.prefix("openai"),
        job_id=job.id,
        attempt=job.attempt,
        status=JobStatus.SUCCEEDED,
        result_json=f'{{"choices":[{{"message":{{"content":"{text}"}}}}]}}',
        error_json="",
        usage_json='{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}',
        cost="0.5",
        ttl_s=3600,
        history_json="",
        usage_record=usage_record("gpt-4o-mini", usage, datetime.now(UTC)),
    )


async def test_a_parked_job_waits_outside_the_lanes_and_no_worker_claims_it(
    broker: Broker, redis: Redis
) -> None:
    job_id = await park(broker)
    found = await record(broker, job_id)
    assert found.status is JobStatus.QUEUED
    assert found.execution == "provider_batch"
    assert found.to_api()["execution"] == "provider_batch"
    assert await broker.claim("openai", "w1", 10) == []
    assert await counts(broker, redis) == {
        "queued": 1,
        "inflight": 0,
        "tqueued": 1,
        "tinflight": 0,
        "leases": 0,
        "parked": 1,
    }
    assert await redis.exists(broker.keys.lane("openai", Priority.BATCH, "acme")) == 0
    assert await redis.exists(broker.keys.body(job_id)) == 1


async def test_taken_jobs_run_under_their_batch_and_its_answer_ends_each_once(
    broker: Broker, redis: Redis
) -> None:
    soon, later = now_ms() + 2 * HOUR_MS, now_ms() + 20 * HOUR_MS
    ids = [await park(broker, cutoff_ms=later) for _ in range(3)]
    urgent = await park(broker, cutoff_ms=soon)
    store = broker.provider_batches
    taken = await store.take("openai", QUEUE, "pb1", max_jobs=10, min_cutoff_ms=now_ms())
    assert taken[0].id == urgent, "the most urgent first"
    assert {j.id for j in taken} == {*ids, urgent}
    assert all(j.attempt == 1 for j in taken)
    assert all(b"line job_" in j.body for j in taken)
    assert await store.take("openai", QUEUE, "pb2", max_jobs=10, min_cutoff_ms=0) == []
    assert await counts(broker, redis) == {
        "queued": 0,
        "inflight": 0,
        "tqueued": 0,
        "tinflight": 0,
        "leases": 0,
        "parked": 0,
    }
    [batch] = await store.active("openai")
    assert (batch.id, batch.queue, batch.state, batch.jobs) == ("pb1", QUEUE, "taken", 4)
    assert batch.cutoff_ms == soon
    assert await store.held(batch) == {j.id: 1 for j in taken}
    started = [e for e in await broker.events_after(urgent, None) if e.type == "started"]
    assert '"execution":"provider_batch"' in started[0].data

    outcomes = await store.finish("openai", [answer(j, broker) for j in taken])
    assert outcomes == [True] * 4
    again = await store.finish("openai", [answer(taken[0], broker, "twice")])
    assert again == [False], "a second answer for the same attempt is not recorded"
    for job in taken:
        done = await record(broker, job.id)
        assert done.status is JobStatus.SUCCEEDED
        assert done.result == {"choices": [{"message": {"content": "batched"}}]}
        assert done.cost_usd == 0.5
        assert done.execution == "provider_batch"
    assert await counts(broker, redis) == {
        "queued": 0,
        "inflight": 0,
        "tqueued": 0,
        "tinflight": 0,
        "leases": 0,
        "parked": 0,
    }
    day = datetime.now(UTC).strftime("%Y%m%d")
    usage = await redis.hgetall(pool_keys(broker).prefix + f"usage:acme:{day}")
    assert int(usage["requests"]) == 4
    assert float(usage["cost_usd"]) == pytest.approx(2.0)
    await store.forget(batch)
    assert await store.active("openai") == []


async def test_jobs_a_batch_did_not_run_go_live_once_with_their_attempt_given_back(
    broker: Broker, redis: Redis
) -> None:
    for _ in range(3):
        await park(broker)
    store = broker.provider_batches
    taken = await store.take("openai", QUEUE, "pb1", max_jobs=10, min_cutoff_ms=0)
    done, *not_run = taken
    assert await store.finish("openai", [answer(done, broker)]) == [True]
    jobs = [(j.id, j.attempt) for j in not_run]
    stale = (done.id, done.attempt)
    sent = await store.release(
        "openai", QUEUE, [*jobs, stale], batch_id="pb1", reason="provider_batch_expired"
    )
    assert sent == [True, True, False], "the answered job is not sent live"
    assert await store.release("openai", QUEUE, jobs, batch_id="pb1", reason="again") == [
        False,
        False,
    ], "nor a job already sent"
    assert await counts(broker, redis) == {
        "queued": 2,
        "inflight": 0,
        "tqueued": 2,
        "tinflight": 0,
        "leases": 0,
        "parked": 0,
    }
    for job in not_run:
        live = await record(broker, job.id)
        assert live.status is JobStatus.QUEUED
        assert live.attempts == 0
        assert live.execution == "live"
        retry = [e for e in await broker.events_after(job.id, None) if e.type == "retry"]
        assert '"reason":"provider_batch_expired"' in retry[0].data
    claimed = await broker.claim("openai", "w1", 10)
    assert sorted(j.id for j in claimed) == sorted(j.id for j in not_run)
    assert all(j.attempt == 1 for j in claimed)
    assert all(b"line job_" in j.body for j in claimed)
    for job in claimed:
        assert await broker.finish(job, "openai", succeeded=True, result={"live": True})
    assert await counts(broker, redis) == {
        "queued": 0,
        "inflight": 0,
        "tqueued": 0,
        "tinflight": 0,
        "leases": 0,
        "parked": 0,
    }


async def test_a_parked_job_past_its_cutoff_goes_live_and_is_never_taken(
    broker: Broker, redis: Redis
) -> None:
    late = await park(broker, cutoff_ms=now_ms() - 1)
    fine = await park(broker)
    store = broker.provider_batches
    assert await store.overdue("openai", QUEUE, now_ms(), 100) == [late]
    taken = await store.take("openai", QUEUE, "pb1", max_jobs=10, min_cutoff_ms=now_ms())
    assert [j.id for j in taken] == [fine], "too late for a batch: left for the release"
    assert await store.release("openai", QUEUE, [(late, None)], reason="cutoff") == [True]
    assert await store.release("openai", QUEUE, [(late, None)], reason="cutoff") == [False]
    [claimed] = await broker.claim("openai", "w1", 10)
    assert claimed.id == late
    assert (await record(broker, late)).execution == "live"
    assert (await counts(broker, redis))["parked"] == 0


async def test_cancelling_a_parked_or_a_held_job_fences_the_batch_out(
    broker: Broker, redis: Redis
) -> None:
    parked = await park(broker)
    held_id = await park(broker, cutoff_ms=now_ms() + HOUR_MS)
    store = broker.provider_batches
    [held] = await store.take("openai", QUEUE, "pb1", max_jobs=1, min_cutoff_ms=0)
    assert held.id == held_id
    assert await broker.cancel("acme", parked) is not None
    assert await broker.cancel("acme", held_id) is not None
    assert await counts(broker, redis) == {
        "queued": 0,
        "inflight": 0,
        "tqueued": 0,
        "tinflight": 0,
        "leases": 0,
        "parked": 0,
    }
    assert await store.finish("openai", [answer(held, broker)]) == [False]
    release = await store.release(
        "openai", QUEUE, [(held.id, held.attempt)], batch_id="pb1", reason="x"
    )
    assert release == [False]
    for job_id in (parked, held_id):
        assert (await record(broker, job_id)).status is JobStatus.CANCELLED
    assert await broker.claim("openai", "w1", 10) == []
