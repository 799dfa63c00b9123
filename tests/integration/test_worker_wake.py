"""An idle worker is woken by new work, not found by its poll (docs/performance.md's round trip
rests on it).

The worker's idle poll is set to a minute, so a job that completes within seconds can only have
been announced to it: by the enqueue (``idle:<pool>`` mark → ``wake:<pool>``) or, for work put
back in the queue, by the requeue.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from redis.asyncio import Redis

from anygate.broker import Broker, ClaimedJob, JobStatus, Subscriptions
from anygate.config import AnygateConfig
from anygate.workers.adapters.base import CallOutcome, ChunkSink
from anygate.workers.worker import Worker, WorkerSettings
from tests.integration.helpers import claim_one, enqueue
from tests.support.eventually import eventually


class InstantAdapter:
    async def call(
        self, job: ClaimedJob, upstream_model: str, on_chunk: ChunkSink, api_key: str | None = None
    ) -> CallOutcome:
        return CallOutcome({"ok": True}, None)

    async def aclose(self) -> None:
        return None


@contextlib.asynccontextmanager
async def idle_worker(config: AnygateConfig, redis: Redis, broker: Broker) -> AsyncIterator[None]:
    """A worker that has claimed what there was and now waits to be woken."""
    subs = Subscriptions(redis)
    await subs.start()
    settings = WorkerSettings("openai", "w-idle", concurrency=4, idle_poll_s=60)
    worker = Worker(config, settings, broker, subs, InstantAdapter())
    task = asyncio.create_task(worker.run())
    try:
        idle = broker.keys.idle("openai")
        await eventually(
            lambda: redis.exists(idle), what="the worker idle", timeout=5, interval=0.01
        )
        yield
    finally:
        worker.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await subs.close()


async def _finished(broker: Broker, job_id: str) -> JobStatus:
    async def succeeded() -> JobStatus | None:
        record = await broker.get("acme", job_id)
        return record.status if record and record.status is JobStatus.SUCCEEDED else None

    return await eventually(succeeded, what=f"job {job_id} succeeded", timeout=5, interval=0.01)


async def test_a_new_job_wakes_an_idle_worker(
    config: AnygateConfig, redis: Redis, broker: Broker
) -> None:
    async with idle_worker(config, redis, broker):
        job_id = (await enqueue(broker)).job_id
        assert await _finished(broker, job_id) is JobStatus.SUCCEEDED


async def test_a_requeued_job_wakes_an_idle_worker(
    config: AnygateConfig, redis: Redis, broker: Broker
) -> None:
    job_id = (await enqueue(broker)).job_id
    taken = await claim_one(broker, "another-worker")  # running elsewhere while ours goes idle
    assert taken is not None
    assert taken.id == job_id
    async with idle_worker(config, redis, broker):
        assert await broker.requeue(taken, "openai", delay_s=0, reason="test", refund_attempt=True)
        assert await _finished(broker, job_id) is JobStatus.SUCCEEDED
