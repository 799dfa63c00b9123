"""A real ``Worker`` whose provider call does nothing: measures the broker, not an upstream.

Run as a process of its own (``python bench/noop_worker.py CONFIG CONCURRENCY [POOL [CHUNKS]]``,
the pool ``bench`` by default), as production workers are, so the figures include the worker
loop, leases, heartbeats and every script call. ``CHUNKS``: a streamed job gets that many chunks,
in one burst (as a fast upstream's chunks arrive in one network read); 0 by default.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import uvloop

from anygate.broker import Broker, ClaimedJob, Subscriptions, create_redis, new_worker_id
from anygate.config import load_config
from anygate.workers.adapters.base import Account, CallOutcome, ChunkSink, ProviderAdapter
from anygate.workers.worker import Worker, WorkerSettings

RESULT = CallOutcome({"object": "noop"}, None)
CHUNK = b'{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"word "}}]}'


class NoopAdapter:
    def __init__(self, chunks: int = 0) -> None:
        self._chunks = chunks

    async def call(
        self,
        job: ClaimedJob,
        upstream_model: str,
        on_chunk: ChunkSink,
        api_key: str | None = None,
        *,
        account: Account | None = None,
    ) -> CallOutcome:
        if job.stream:
            for _ in range(self._chunks):
                await on_chunk(CHUNK)
        return RESULT

    async def aclose(self) -> None:
        return None


async def main(
    config_path: str,
    concurrency: int,
    pool: str = "bench",
    adapter: ProviderAdapter | None = None,
    chunks: int = 0,
) -> None:
    """Serve ``pool`` until SIGTERM; ``adapter``: another no-op one (e.g. one that counts);
    ``chunks``: the default adapter streams that many chunks."""
    config = load_config(config_path)
    redis = create_redis(config.redis)
    await redis.ping()  # a cluster client learns its slot map from the first command
    subs = Subscriptions(redis)
    await subs.start()
    settings = WorkerSettings(pool, new_worker_id(pool), concurrency)
    worker = Worker(config, settings, Broker(redis, config), subs, adapter or NoopAdapter(chunks))
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, worker.stop)
    await worker.run()
    await subs.close()
    await redis.aclose()


if __name__ == "__main__":
    pool = sys.argv[3] if len(sys.argv) > 3 else "bench"
    uvloop.run(
        main(
            sys.argv[1], int(sys.argv[2]), pool, chunks=int(sys.argv[4]) if len(sys.argv) > 4 else 0
        )
    )
