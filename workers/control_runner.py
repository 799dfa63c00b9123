"""``anygate control``: arq workers, one after another, so a Redis outage never ends the process.

arq 0.28 lets a Redis error escape ``Worker.main()`` (its poll loop, its cron enqueues, a job's
bookkeeping), and ``Worker.run()`` then exits: batches, webhooks and pruning stopped, silently,
on the first Redis restart. Here each arq worker lives for one *session*:

1. start: once Redis answers (waiting with jittered backoff, ``broker/redis_link.py``), a fresh
   arq connection pool and the start-up work (``control.prepare``: tenants seeded, a new batch
   driver); ``run_at_startup`` cron jobs then run at once;
2. serve: arq's own loop, until a Redis error escapes it;
3. close, without waiting on Redis (arq's ``close()`` would): the session's running jobs are
   cancelled, arq's pool closed. A job whose bookkeeping could not reach Redis keeps arq's
   in-progress mark, which would hold it back for a minute: the next session clears the marks
   of exactly those jobs, so a webhook cut short by the outage is delivered once Redis is back.

Then the next session starts. SIGTERM/SIGINT cancel the supervisor: the running jobs are
cancelled (arq runs them again later, as on its own shutdown) and the process exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

import structlog
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from arq.worker import Worker as ArqWorker
from redis.asyncio import ConnectionPool, Redis
from redis.exceptions import RedisError

from anygate.broker import KeySpace, create_redis
from anygate.broker.connection import redis_options
from anygate.broker.redis_link import RedisLink, is_outage
from anygate.config import AnygateConfig
from anygate.workers.control import prepare, queue_name, worker_settings

log = structlog.get_logger(__name__)

CLOSE_GRACE_S = 2.0
"""How long a closing session gives its cancelled jobs to record that they will run again."""


class _SessionWorker(ArqWorker):
    """arq's worker, remembering which jobs it holds an in-progress mark for: a job is let go
    once its bookkeeping reached Redis (``run_job`` returned)."""

    holding: set[str]

    async def run_job(self, job_id: str, score: int) -> None:
        self.holding.add(job_id)
        await super().run_job(job_id, score)
        self.holding.discard(job_id)


class _Session:
    def __init__(self, worker: _SessionWorker, pool: ArqRedis) -> None:
        self.worker = worker
        self._pool = pool

    @classmethod
    async def start(
        cls, config: AnygateConfig, redis: Redis, link: RedisLink, stale: set[str]
    ) -> _Session:
        keys = KeySpace(config.redis.namespace)
        pool = _arq_pool(config, keys)
        try:
            await pool.ping()
            if stale:  # jobs an earlier session held when Redis went away
                await pool.delete(*(in_progress_key_prefix + job_id for job_id in stale))
                stale.clear()
            ctx: dict[str, Any] = {
                "config": config, "anygate_redis": redis, "link": link, "keys": keys,
                "queue": queue_name(keys), "redis": pool,
            }  # fmt: skip
            await prepare(ctx)
        except BaseException:
            await pool.aclose(close_connection_pool=True)
            raise
        worker = _SessionWorker(**worker_settings(keys), redis_pool=pool, ctx=ctx,
                                handle_signals=False)  # fmt: skip
        worker.holding = set()
        return cls(worker, pool)

    async def serve(self) -> None:
        """arq's loop; returns only by raising (a Redis error) or being cancelled."""
        await self.worker.main()

    async def close(self, *, redis_up: bool) -> set[str]:
        """Cancel the session's jobs and close its pool; the ids of the jobs whose in-progress
        mark may still be set."""
        running = [t for t in self.worker.tasks.values() if not t.done()]
        for task in running:
            task.cancel()
        pending: set[asyncio.Task[Any]] = set()
        if running:
            _done, pending = await asyncio.wait(running, timeout=CLOSE_GRACE_S)
        for task in self.worker.tasks.values():  # whatever they raised, we know already
            if task.done():
                _forget_outcome(task)
            else:
                task.add_done_callback(_forget_outcome)
        if redis_up and not pending:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                await asyncio.wait_for(self._pool.delete(self.worker.health_check_key), 1.0)
        await self._pool.aclose(close_connection_pool=True)
        return set(self.worker.holding)


def _forget_outcome(task: asyncio.Task[Any]) -> None:
    """Mark a task's exception as retrieved: asyncio would log it as "never retrieved"."""
    if not task.cancelled():
        task.exception()


def _arq_pool(config: AnygateConfig, keys: KeySpace) -> ArqRedis:
    """arq's client, with our socket timeouts (arq sets none for commands: a paused Redis
    would hang it) and bytes replies (arq decodes its own)."""
    options = redis_options(config.redis)
    options["decode_responses"] = False
    pool = ConnectionPool.from_url(config.redis.url, **options)
    return ArqRedis(pool, default_queue_name=queue_name(keys))


async def run_control(config: AnygateConfig) -> None:
    """Sessions one after another, until cancelled."""
    link = RedisLink("control")
    redis = create_redis(config.redis)
    watch = asyncio.create_task(link.watch(redis), name="redis-watch")
    stale: set[str] = set()
    log.info("control plane starting", namespace=config.redis.namespace)
    try:
        while True:
            session = await link.retry(lambda: _Session.start(config, redis, link, stale))
            assert session is not None  # no `until`: retry returns only with a session
            try:
                await session.serve()
            except Exception as exc:
                if not is_outage(exc):
                    raise
                link.lost(exc)
            finally:
                stale.update(await session.close(redis_up=not link.down))
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
        await redis.aclose()


async def main(config: AnygateConfig) -> None:
    """The ``anygate control`` process: ``run_control`` until SIGTERM or SIGINT."""
    # arq logs two lines per job at INFO: several a second from the cron ticks alone.
    logging.getLogger("arq").setLevel(max(logging.getLogger().level, logging.WARNING))
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await run_control(config)
    except asyncio.CancelledError:
        log.info("control plane stopped")
