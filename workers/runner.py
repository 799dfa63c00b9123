"""``anygate worker``: one process serving one provider pool until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal

import structlog

from anygate.broker import Broker, Subscriptions, create_redis, new_worker_id
from anygate.broker.tenant_store import TenantStore
from anygate.broker.transient import RedisOutage
from anygate.config import AnygateConfig
from anygate.workers.adapters import create_adapter
from anygate.workers.worker import Worker, WorkerSettings

log = structlog.get_logger(__name__)


async def run_worker(
    config: AnygateConfig,
    pool: str,
    concurrency: int | None = None,
    *,
    shutdown_grace_s: float = 30.0,
) -> None:
    if pool not in config.providers:
        raise SystemExit(
            f"--pool {pool!r}: no such provider; configured: {sorted(config.providers)}"
        )
    slots = concurrency or config.pool(pool).concurrency
    settings = WorkerSettings(
        pool=pool,
        worker_id=new_worker_id(pool),
        concurrency=slots,
        shutdown_grace_s=shutdown_grace_s,
    )
    redis = create_redis(config.redis)
    subscriptions = Subscriptions(redis)
    adapter = create_adapter(config, pool, slots)
    broker = Broker(redis, config, outage=RedisOutage(f"worker {settings.worker_id}"))
    await TenantStore(redis, broker.keys).seed(config, keys=False)
    worker = Worker(config, settings, broker, subscriptions, adapter)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    await subscriptions.start()
    log.info("worker started", pool=pool, worker_id=settings.worker_id, concurrency=slots)
    try:
        await worker.run()
    finally:
        await subscriptions.close()
        await adapter.aclose()
        await redis.aclose()
        log.info("worker stopped", worker_id=settings.worker_id)
