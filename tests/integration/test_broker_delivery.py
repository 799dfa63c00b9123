"""At-least-once delivery, exactly-once results, cancellation and retention on a real Redis."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from anygate.broker import Broker, JobStatus, Subscriptions, create_redis
from anygate.broker.errors import IdempotencyConflictError
from anygate.broker.worker_registry import RegistryValue
from anygate.config import AnygateConfig, Priority
from anygate.ops.embedded_redis import EmbeddedRedis
from tests.integration.helpers import chat_body, claim_one, enqueue
from tests.support.configs import build_config, standalone_only
from tests.support.eventually import eventually


@pytest.fixture
def short_lease(redis_server: EmbeddedRedis, namespace: str) -> AnygateConfig:
    return build_config(
        redis_server.url,
        namespace,
        queue={"visibility_timeout_s": 0.3, "heartbeat_interval_s": 0.1, "max_attempts": 2},
    )


async def test_a_retried_job_keeps_its_body_and_a_finished_one_drops_it(
    broker: Broker, redis: Redis
) -> None:
    await enqueue(broker, body=chat_body("keep me"))
    first = await claim_one(broker)
    assert first is not None
    assert await broker.requeue(first, "openai", delay_s=0, reason="test", refund_attempt=False)
    again = await claim_one(broker)
    assert again is not None
    assert again.body == first.body == chat_body("keep me")
    assert await broker.finish(again, "openai", succeeded=True, result={})
    assert await redis.exists(broker.keys.body(again.id)) == 0


async def test_first_completion_is_the_only_one_recorded(broker: Broker) -> None:
    await enqueue(broker)
    job = await claim_one(broker)
    assert job is not None
    assert await broker.finish(job, "openai", succeeded=True, result={"n": 1})
    assert not await broker.finish(job, "openai", succeeded=True, result={"n": 2})
    record = await broker.get("acme", job.id)
    assert record is not None
    assert record.result == {"n": 1}


async def test_lapsed_lease_is_redelivered_with_a_retry_event(short_lease: AnygateConfig) -> None:
    redis = create_redis(short_lease.redis)
    broker = Broker(redis, short_lease)
    try:
        await enqueue(broker)
        first = await claim_one(broker, "dead-worker")
        assert first is not None
        assert await eventually(lambda: broker.reclaim("openai"), what="the lease to lapse") == 1
        second = await claim_one(broker, "live-worker")
        assert second is not None
        assert (second.id, second.attempt) == (first.id, 2)
        assert second.body == first.body, "the body left the lane with the job"
        assert not await broker.append(first, "chunk", "{}", first_seq=1), (
            "the stale attempt is fenced off"
        )
        assert not await broker.finish(first, "openai", succeeded=True, result={"from": "dead"})
        assert await broker.finish(second, "openai", succeeded=True, result={"from": "live"})
        types = [e.type for e in await broker.events_after(first.id, None)]
        assert types == ["queued", "started", "retry", "started", "completed"]
    finally:
        await redis.aclose()


async def test_heartbeat_keeps_a_long_job_leased(short_lease: AnygateConfig) -> None:
    redis = create_redis(short_lease.redis)
    broker = Broker(redis, short_lease)
    try:
        await enqueue(broker)
        job = await claim_one(broker)
        assert job is not None
        for _ in range(6):
            await asyncio.sleep(0.1)  # the point: beats keep a job leased over 2 leases
            beat = await broker.heartbeat(
                "openai", "w1", RegistryValue(0, 1, 1), [(job.id, job.attempt)]
            )
            assert beat == []
            assert await broker.reclaim("openai") == 0
    finally:
        await redis.aclose()


async def test_job_that_keeps_killing_workers_fails_after_max_attempts(
    short_lease: AnygateConfig,
) -> None:
    redis = create_redis(short_lease.redis)
    broker = Broker(redis, short_lease)
    try:
        await enqueue(broker)
        for _ in range(2):
            assert await claim_one(broker) is not None
            await eventually(lambda: broker.reclaim("openai"), what="the lease to lapse")
        job_id = (await broker.list_jobs("acme", status=None, limit=1, after=None))[0][0].id
        record = await broker.get("acme", job_id)
        assert record is not None
        assert record.status is JobStatus.FAILED
        assert record.error["code"] == "max_attempts_exceeded"
    finally:
        await redis.aclose()


async def test_cancelled_queued_job_is_never_dispatched(broker: Broker) -> None:
    queued = await enqueue(broker)
    assert await broker.cancel("acme", queued.job_id)
    assert await broker.claim("openai", "w1", 10) == []
    record = await broker.get("acme", queued.job_id)
    assert record is not None
    assert record.status is JobStatus.CANCELLED


async def test_cancel_of_running_job_tells_its_worker(broker: Broker, redis: Redis) -> None:
    await enqueue(broker)
    job = await claim_one(broker, "w-ctl")
    assert job is not None
    subs = Subscriptions(redis)
    await subs.start()
    try:
        async with subs.subscribe(broker.keys.worker_channel("w-ctl")) as control:
            assert await broker.cancel("acme", job.id)
            assert await asyncio.wait_for(control.get(), 1.0) == f"cancel {job.id}"
    finally:
        await subs.close()
    assert not await broker.finish(job, "openai", succeeded=True, result={})
    assert await broker.heartbeat(
        "openai", "w-ctl", RegistryValue(0, 1, 1), [(job.id, job.attempt)]
    ) == [job.id]


async def test_other_tenant_can_neither_read_nor_cancel(broker: Broker) -> None:
    queued = await enqueue(broker, "acme")
    assert await broker.get("globex", queued.job_id) is None
    assert not await broker.cancel("globex", queued.job_id)
    record = await broker.get("acme", queued.job_id)
    assert record is not None
    assert record.status is JobStatus.QUEUED


async def test_idempotency_key_returns_the_first_job(broker: Broker) -> None:
    first = await enqueue(broker, idempotency_key="k1")
    again = await enqueue(broker, idempotency_key="k1")
    assert (again.job_id, again.created) == (first.job_id, False)
    with pytest.raises(IdempotencyConflictError):
        await enqueue(broker, idempotency_key="k1", body=chat_body("something else"))
    other_tenant = await enqueue(broker, "globex", idempotency_key="k1")
    assert other_tenant.created
    assert len(await broker.claim("openai", "w1", 10)) == 2


async def test_job_past_its_deadline_expires_instead_of_running(broker: Broker) -> None:
    queued = await enqueue(broker, deadline_ms=int(time.time() * 1000) + 50)
    # The point: the deadline passes before any claim; polling claim would run the job in time.
    await asyncio.sleep(0.1)
    assert await broker.claim("openai", "w1", 10) == []
    record = await broker.get("acme", queued.job_id)
    assert record is not None
    assert record.status is JobStatus.EXPIRED


async def test_terminal_jobs_expire_and_queued_jobs_do_not(
    broker: Broker, redis: Redis, config: AnygateConfig
) -> None:
    done = await enqueue(broker)
    waiting = await enqueue(broker)
    job = await claim_one(broker)
    assert job is not None
    assert job.id == done.job_id
    await broker.finish(job, "openai", succeeded=True, result={})
    ttl = await redis.ttl(broker.keys.job(done.job_id))
    assert config.retention.result_ttl_s - 5 <= ttl <= config.retention.result_ttl_s
    assert await redis.ttl(broker.keys.events(done.job_id)) > 0
    assert await redis.ttl(broker.keys.job(waiting.job_id)) == -1


async def test_event_replay_resumes_after_the_given_id(broker: Broker) -> None:
    await enqueue(broker)
    job = await claim_one(broker)
    assert job is not None
    for i in range(5):
        await broker.append(job, "chunk", orjson.dumps({"i": i}), first_seq=i + 1)
    await broker.finish(job, "openai", succeeded=True, result={})
    events = await broker.events_after(job.id, None)
    resumed = await broker.events_after(job.id, events[3].id)
    assert resumed == events[4:]


async def test_a_replay_begins_with_the_queued_event_the_log_never_stores(
    broker: Broker, redis: Redis
) -> None:
    """The scripts store no ``queued`` event (0-1); a replay from the start adds it, once, also
    to a log written before they stopped storing it, and a resume after it does not."""
    await enqueue(broker)
    job = await claim_one(broker)
    assert job is not None
    await broker.finish(job, "openai", succeeded=True, result={})
    stored = [eid for eid, _f in await redis.xrange(broker.keys.events(job.id))]
    assert "0-1" not in stored
    events = await broker.events_after(job.id, None)
    assert [(e.id, e.type) for e in events[:2]] == [("0-1", "queued"), (stored[0], "started")]
    assert await broker.events_after(job.id, "0-0") == events
    assert await broker.events_after(job.id, "0-1") == events[1:]

    old = await enqueue(broker)  # a log from before: its queued event stored at 0-1
    queued = orjson.dumps({"id": old.job_id, "status": "queued"}).decode()
    await redis.xadd(broker.keys.events(old.job_id), {"t": "queued", "d": queued}, id="0-1")
    replayed = await broker.events_after(old.job_id, None)
    assert [(e.id, e.type) for e in replayed] == [("0-1", "queued")]  # not added twice


@standalone_only
@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "sigkill-after-fsync"])
async def test_queued_jobs_survive_a_redis_restart(tmp_path: Path, crash: bool) -> None:
    server = EmbeddedRedis(tmp_path / "redis", aof=True).start()
    config = build_config(server.url, "restart")
    try:
        redis = create_redis(config.redis)
        broker = Broker(redis, config)
        ids = {(await enqueue(broker)).job_id for _ in range(100)}
        await redis.aclose()
        if crash:
            await asyncio.sleep(1.5)  # appendfsync everysec: what is a second old is on disk
        server.stop(hard=crash)
        server.start()
        redis = create_redis(config.redis)
        broker = Broker(redis, config)
        claimed = {j.id for j in await broker.claim("openai", "w1", 200)}
        assert claimed == ids
        await redis.aclose()
    finally:
        server.stop()


async def test_heartbeat_does_not_report_a_job_its_attempt_just_finished(broker: Broker) -> None:
    """The worker may heartbeat a job it finished a moment ago: that is not a lost job."""
    await enqueue(broker)
    job = await claim_one(broker, "w-hb")
    assert job is not None
    assert await broker.finish(job, "openai", succeeded=True, result={})
    assert (
        await broker.heartbeat("openai", "w-hb", RegistryValue(0, 1, 1), [(job.id, job.attempt)])
        == []
    )


async def test_a_drained_lane_leaves_nothing_behind(broker: Broker, redis: Redis) -> None:
    """A lane whose last job ended is deleted with its consumer group, and one that meets a new
    job meanwhile is kept (and its new job claimable)."""
    await enqueue(broker)
    await enqueue(broker)
    lane = broker.keys.lane("openai", Priority.STANDARD, "acme")
    first, second = await broker.claim("openai", "w1", 1), await broker.claim("openai", "w1", 1)
    await broker.finish(first[0], "openai", succeeded=True, result={})
    assert await redis.exists(lane) == 1, "the second job's entry is still delivered there"
    late = await enqueue(broker)  # joins while the second is running
    await broker.finish(second[0], "openai", succeeded=True, result={})
    assert await redis.exists(lane) == 1, "a lane with queued work stays"
    third = await claim_one(broker)
    assert third is not None
    assert third.id == late.job_id
    await broker.finish(third, "openai", succeeded=True, result={})
    assert await redis.exists(lane) == 0, "the drained lane went, and its group with it"
    again = await enqueue(broker)
    fourth = await claim_one(broker)
    assert fourth is not None
    assert fourth.id == again.job_id, "a new job recreates the lane and its group"


@pytest.mark.parametrize("model", ['meta/llama-3 "8b"', "modèle-ünïcode", "plain"])
async def test_the_next_model_reaches_the_retry_event_as_sent(broker: Broker, model: str) -> None:
    """requeue-6.lua places the model, one JSON string encoded in Python, into the ``retry``
    event it writes: it reads back equal, however it is spelt, and the event stays one JSON
    object with orjson's spelling of the model."""
    created = await enqueue(broker, body=chat_body("fall back"))
    job = await claim_one(broker)
    assert job is not None
    assert await broker.requeue(
        job, "openai", delay_s=0, reason="fallback", refund_attempt=False, next_model=model
    )
    retry = [e for e in await broker.events_after(created.job_id, None) if e.type == "retry"]
    assert len(retry) == 1
    assert orjson.loads(retry[0].data)["model"] == model
    assert retry[0].data.endswith(f',"model":{orjson.dumps(model).decode()}}}')


async def test_a_retry_event_without_a_new_model_names_none(broker: Broker) -> None:
    created = await enqueue(broker, body=chat_body("same model"))
    job = await claim_one(broker)
    assert job is not None
    assert await broker.requeue(job, "openai", delay_s=0, reason="t", refund_attempt=False)
    (retry,) = [e for e in await broker.events_after(created.job_id, None) if e.type == "retry"]
    assert "model" not in orjson.loads(retry.data)
