"""A real ``Worker`` whose provider call returns only when the bench releases that job.

Run as a process of its own (``python bench/gate_worker.py CONFIG CONCURRENCY RELEASE_KEY``,
pool ``bench``): it claims every job and holds each one until its id arrives on the Redis list
``RELEASE_KEY`` (pushed by ``waiters.py``, several ids to an item, space-separated). The job
then ends through the worker's ordinary finish, so its ``finished_ms`` (Redis time, set by the
finish script) is the moment its waiters are measured from, and the bench chooses when and how
fast jobs end while 2,000 clients wait on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

import uvloop
from redis.asyncio import Redis

from anygate.broker import Broker, ClaimedJob, Subscriptions, create_redis, new_worker_id
from anygate.config import load_config
from anygate.workers.adapters.base import Account, CallOutcome, ChunkSink
from anygate.workers.worker import Worker, WorkerSettings

RESULT = CallOutcome({"object": "gated"}, None)


class GateAdapter:
    """Holds each call until its job id is released (released before its call: no wait)."""

    def __init__(self) -> None:
        self._gates: dict[str, asyncio.Event] = {}

    def release(self, job_id: str) -> None:
        self._gates.setdefault(job_id, asyncio.Event()).set()

    async def call(
        self,
        job: ClaimedJob,
        upstream_model: str,
        on_chunk: ChunkSink,
        api_key: str | None = None,
        *,
        account: Account | None = None,
    ) -> CallOutcome:
        gate = self._gates.setdefault(job.id, asyncio.Event())
        await gate.wait()
        del self._gates[job.id]
        return RESULT

    async def aclose(self) -> None:
        return None


async def _releases(redis: Redis, key: str, adapter: GateAdapter) -> None:
    while True:
        item = await redis.blpop([key], timeout=1)
        if item is not None:
            for job_id in item[1].split():
                adapter.release(job_id)


async def main(config_path: str, concurrency: int, release_key: str) -> None:
    config = load_config(config_path)
    redis = create_redis(config.redis)
    gate_client = create_redis(config.redis)  # BLPOP blocks a connection of its own
    await redis.ping()
    subs = Subscriptions(redis)
    await subs.start()
    adapter = GateAdapter()
    settings = WorkerSettings("bench", new_worker_id("bench"), concurrency)
    worker = Worker(config, settings, Broker(redis, config), subs, adapter)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, worker.stop)
    gate = asyncio.create_task(_releases(gate_client, release_key, adapter))
    try:
        await worker.run()
    finally:
        gate.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gate
        await subs.close()
        await gate_client.aclose()
        await redis.aclose()


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
