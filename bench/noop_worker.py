"""A real ``Worker`` whose provider call does nothing: measures the broker, not an upstream.

Run as a process of its own (``python bench/noop_worker.py CONFIG CONCURRENCY [POOL]``, the pool
``bench`` by default), as production workers are, so the figures include the worker loop,
leases, heartbeats and every script call.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import uvloop

from anygate.broker import Broker, ClaimedJob, Subscriptions, create_redis, new_worker_id
from anygate.config import load_config
from anygate.workers.adapters.base import CallOutcome, ChunkSink, ProviderAdapter
from anygate.workers.worker import Worker, WorkerSettings

RESULT = CallOutcome({"object": "noop"}, None)


class NoopAdapter:
    async def call(
        self, job: ClaimedJob, upstream_model: str, on_chunk: ChunkSink, api_key: str | None = None
    ) -> CallOutcome:
        return RESULT

    async def aclose(self) -> None:
        return None


async def main(
    config_path: str,
    concurrency: int,
    pool: str = "bench",
    adapter: ProviderAdapter | None = None,
) -> None:
    """Serve ``pool`` until SIGTERM; ``adapter``: another no-op one (e.g. one that counts)."""
    config = load_config(config_path)
    redis = create_redis(config.redis)
    await redis.ping()  # a cluster client learns its slot map from the first command
    subs = Subscriptions(redis)
    await subs.start()
    settings = WorkerSettings(pool, new_worker_id(pool), concurrency)
    worker = Worker(config, settings, Broker(redis, config), subs, adapter or NoopAdapter())
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, worker.stop)
    await worker.run()
    await subs.close()
    await redis.aclose()


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "bench"))
