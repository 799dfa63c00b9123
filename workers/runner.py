"""``anygate worker``: one process serving one provider pool until SIGTERM/SIGINT.

Redis need not be up when the process starts, and may go away while it runs: the start-up
(tenants seeded, subscriptions confirmed, the first heartbeat) is retried with jittered backoff
until Redis answers (``broker/redis_link.py``), and the process logs one warning per outage and
one line when Redis is back. SIGTERM during that wait ends the process at once; once serving,
it stops claiming and drains (``worker.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

import structlog

from anygate.broker import Broker, Subscriptions, create_redis, new_worker_id
from anygate.broker.redis_link import RedisLink
from anygate.broker.tenant_store import TenantStore
from anygate.config import AnygateConfig, SecretRef
from anygate.config.reload import (
    ConfigState,
    Problem,
    ReloadPlan,
    secret_problems,
    worker_problems,
)
from anygate.config.reloader import ConfigReloader, ReloadRefusedError
from anygate.telemetry import record_config, tracing
from anygate.workers.adapters import create_adapter
from anygate.workers.adapters.google_token import ServiceAccountError
from anygate.workers.worker import Worker, WorkerSettings
from anygate.workers.worker_config import slots_of

log = structlog.get_logger(__name__)


async def run_worker(
    config: AnygateConfig,
    pool: str,
    concurrency: int | None = None,
    *,
    shutdown_grace_s: float = 30.0,
    watch_config: bool = False,
) -> None:
    """``concurrency``: slots for the process's whole life (else the pool's, reloaded live);
    ``watch_config``: reload the config when its file changes, besides on SIGHUP."""
    if pool not in config.providers:
        raise SystemExit(
            f"--pool {pool!r}: no such provider; configured: {sorted(config.providers)}"
        )
    slots = slots_of(config, pool, concurrency)
    settings = WorkerSettings(
        pool=pool,
        worker_id=new_worker_id(pool),
        concurrency=slots,
        shutdown_grace_s=shutdown_grace_s,
    )
    if tracing.enabled:
        tracing.spans.start("anygate-worker")
    redis = create_redis(config.redis)
    link = RedisLink(f"worker {settings.worker_id}")
    subscriptions = Subscriptions(redis, link)
    adapter = create_adapter(config, pool, slots)
    broker = Broker(redis, config, link=link)
    worker = Worker(config, settings, broker, subscriptions, adapter)
    stopping = asyncio.Event()

    async def apply_config(new: AnygateConfig, _plan: ReloadPlan) -> None:
        """Build the worker's new runtime from ``new``, then swap it in (``worker.py``)."""
        problems = secret_problems(_pool_secrets(new, pool))
        if problems:
            raise ReloadRefusedError(problems)
        try:
            worker.reconfigure(new, slots_of(new, pool, concurrency), Broker(redis, new, link=link))
        except ServiceAccountError as exc:  # a vertex key file that is not one: keep the old
            where, _, why = str(exc).partition(": ")
            raise ReloadRefusedError([Problem(where, why)]) from None

    reloader = ConfigReloader(
        ConfigState(config),
        apply_config,
        process=f"worker {settings.worker_id}",
        check=lambda new: worker_problems(new, pool),
        observe=record_config,
        watch=watch_config,
    )

    def stop() -> None:
        stopping.set()
        worker.stop()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    watch = asyncio.create_task(link.watch(redis), name="redis-watch")
    reloader.start()
    await subscriptions.start()
    log.info("worker started", pool=pool, worker_id=settings.worker_id, concurrency=slots)
    try:
        tenants = TenantStore(redis, broker.keys)
        await link.retry(lambda: tenants.seed(config, keys=False), until=stopping)
        # ``run`` subscribes and heartbeats before it claims: a Redis lost meanwhile ends it
        # with an outage error, and it is started again (nothing is claimed before that).
        await link.retry(worker.run, until=stopping)
    finally:
        await reloader.stop()
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
        await subscriptions.close()
        await worker.close_adapters()
        await redis.aclose()
        if tracing.enabled:
            tracing.spans.shutdown()  # export what is buffered
        log.info("worker stopped", worker_id=settings.worker_id)


def _pool_secrets(config: AnygateConfig, pool: str) -> list[tuple[str, SecretRef]]:
    return config.secret_refs(pool)
