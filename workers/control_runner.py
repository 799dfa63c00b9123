"""``anygate control``: arq workers, one after another, so a Redis outage never ends the process.

arq 0.28 lets a Redis error escape ``Worker.main()`` (its poll loop, its cron enqueues, a job's
bookkeeping), and ``Worker.run()`` then exits: batches, webhooks and pruning stopped, silently,
on the first Redis restart. Here each arq worker lives for one *session*:

1. start: once Redis answers (waiting with jittered backoff, ``broker/redis_link.py``), a fresh
   arq connection pool and the start-up work (``control.prepare``: tenants seeded, a new batch
   driver); ``run_at_startup`` cron jobs then run at once;
2. serve: arq's own loop, until a Redis error escapes it;
3. close, without depending on Redis (arq's ``close()`` does): the running jobs are cancelled
   and arq records each as "run again" if it can; the pool is closed.

Then the next session starts, and first tidies what the last one cut short (``_Leftovers``).
SIGTERM/SIGINT cancel the supervisor: the running jobs are cancelled (arq runs them again
later, as on its own shutdown) and the process exits within ``CLOSE_GRACE_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field
from typing import Any

import arq.jobs as arq_jobs
import arq.worker as arq_worker
import structlog
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix
from arq.worker import Worker as ArqWorker
from redis.asyncio import ConnectionPool, Redis
from redis.exceptions import RedisError

from anygate.broker import ClusterCollector, KeySpace, create_redis, start_refresh
from anygate.broker.cluster_connection import as_cluster
from anygate.broker.connection import connection_pool, redis_options
from anygate.broker.redis_link import RedisLink, is_outage
from anygate.config import AnygateConfig
from anygate.config.reload import ConfigState, ReloadPlan
from anygate.config.reloader import ConfigReloader
from anygate.telemetry import record_config, register_collector, unregister_collector
from anygate.workers.control import prepare, queue_name, worker_settings

log = structlog.get_logger(__name__)

CLOSE_GRACE_S = 2.0
"""How long a session closed on SIGTERM gives its cancelled jobs to record that they will run
again. A session closed by an outage waits as long as a Redis command can (``_outage_grace_s``):
Redis is away anyway, and a job whose record gets through leaves nothing to tidy."""


@dataclass
class _Leftovers:
    """What a session cut short leaves in arq's keys, tidied once Redis answers.

    - ``ticks``: cron runs that were cancelled. arq would keep each in its queue and run it
      again a minute late, then refuse it ("max retries 1 exceeded"); dropped instead, since
      the next tick comes within a second.
    - ``marks``: jobs whose bookkeeping never reached Redis keep arq's in-progress mark, which
      holds them back for a minute (their longest timeout + 10 s); cleared, so a webhook cut
      short by the outage goes out as soon as Redis is back. (With several control processes,
      another one may have taken the job since: it is then delivered twice at worst, which
      the delivery id lets a receiver see.)
    """

    ticks: set[str] = field(default_factory=set)
    marks: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.ticks or self.marks)

    async def tidy(self, pool: ArqRedis, queue: str) -> None:
        async with pool.pipeline(transaction=False) as pipe:
            for job_id in self.ticks:
                pipe.zrem(queue, job_id)
                pipe.delete(*(p + job_id for p in (job_key_prefix, retry_key_prefix)))
            for job_id in self.ticks | self.marks:
                pipe.delete(in_progress_key_prefix + job_id)
            await pipe.execute()
        self.ticks.clear()
        self.marks.clear()


class _SessionWorker(ArqWorker):
    """arq's worker, remembering the jobs whose bookkeeping has not reached Redis yet (from
    setting their in-progress mark to recording their end)."""

    holding: set[str]

    async def run_job(self, job_id: str, score: int) -> None:
        self.holding.add(job_id)
        await super().run_job(job_id, score)
        self.holding.discard(job_id)

    def is_tick(self, job_id: str) -> bool:
        """A cron run: arq names it ``<cron name>:<ms>``."""
        return any(job_id.startswith(f"{cron.name}:") for cron in self.cron_jobs)


class _Session:
    def __init__(self, worker: _SessionWorker, pool: ArqRedis) -> None:
        self.worker = worker
        self._pool = pool

    @classmethod
    async def start(
        cls, config: AnygateConfig, redis: Redis, link: RedisLink, leftovers: _Leftovers
    ) -> _Session:
        keys = KeySpace.of(config)
        _arq_abort_key_in_home_slot(keys)
        pool = await _arq_pool(config, keys, redis)
        try:
            await pool.ping()
            if leftovers:
                await leftovers.tidy(pool, queue_name(keys))
            ctx: dict[str, Any] = {
                "config": config,
                "anygate_redis": redis,
                "link": link,
                "keys": keys,
                "queue": queue_name(keys),
                "redis": pool,
            }
            await prepare(ctx)
        except BaseException:
            await pool.aclose(close_connection_pool=True)
            raise
        worker = _SessionWorker(
            **worker_settings(keys, config.budget_warnings.check_interval_s),
            redis_pool=pool,
            ctx=ctx,
            handle_signals=False,
        )
        worker.holding = set()
        return cls(worker, pool)

    async def reconfigure(self, config: AnygateConfig) -> None:
        """A config reload: the session's start-up work again (new tenants seeded, a new
        broker, budget watch and batch driver) into a copy of its context, then swapped in at
        once. A job already running keeps the objects it started with; arq hands the next
        ones the new (it copies the context per job)."""
        fresh = {**self.worker.ctx, "config": config}
        await prepare(fresh)
        self.worker.ctx.update({key: fresh[key] for key in _DERIVED})

    async def serve(self) -> None:
        """arq's loop; returns only by raising (a Redis error) or being cancelled."""
        await self.worker.main()

    async def close(self, leftovers: _Leftovers, *, grace_s: float, redis_up: bool) -> None:
        """Close the session, adding what it cut short to ``leftovers`` (tidied at once when
        Redis is up, else by the next session).

        The jobs themselves are cancelled, not arq's tasks around them: arq then records each
        as "run again" (its bookkeeping, shielded from cancellation, fails at once while Redis
        refuses connections, or succeeds if Redis comes back meanwhile). Its tasks are given
        ``grace_s`` for that, then cancelled."""
        worker = self.worker
        cut = {job_id for job_id, task in worker.tasks.items() if not task.done()}
        for job in list(worker.job_tasks.values()):
            job.cancel()
        running = [worker.tasks[job_id] for job_id in cut]
        try:
            pending: set[asyncio.Task[Any]] = set()
            if running:
                _done, pending = await asyncio.wait(running, timeout=grace_s)
            for task in pending:
                task.cancel()
            for task in worker.tasks.values():  # whatever they raised, we know already
                task.add_done_callback(_forget_outcome)
            for job_id in cut | worker.holding:  # holding: also those whose failure ended arq
                if worker.is_tick(job_id):
                    leftovers.ticks.add(job_id)
                elif job_id in worker.holding:
                    leftovers.marks.add(job_id)
            if redis_up and not pending:
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._pool.delete(worker.health_check_key)
                        await leftovers.tidy(self._pool, worker.queue_name)
        finally:
            await self._pool.aclose(close_connection_pool=True)


_DERIVED = ("config", "broker", "budget_watch", "batch_driver", "provider_batches")
"""What ``prepare`` derives from config, swapped by ``_Session.reconfigure``."""


def _forget_outcome(task: asyncio.Task[Any]) -> None:
    """Mark a task's exception as retrieved: asyncio would log it as "never retrieved"."""
    if not task.cancelled():
        task.exception()


def _outage_grace_s(config: AnygateConfig) -> float:
    """A command's socket timeout, three times (``redis_options`` retries twice), and a bit."""
    return 3 * config.redis.socket_timeout_s + 1.0


def _arq_abort_key_in_home_slot(keys: KeySpace) -> None:
    """arq keeps one set of its own outside any job's keys, ``arq:abort`` (jobs asked to stop,
    removed from on every job's end): renamed under the namespace's hash tag, so that on a
    Redis Cluster it shares the home slot with the queue and the job keys (a transaction over
    two slots is refused). A control process serves one namespace, so one name per process."""
    name = f"arq:{{{keys.namespace}}}:abort"
    arq_worker.abort_jobs_ss = name  # type: ignore[attr-defined]
    arq_jobs.abort_jobs_ss = name  # type: ignore[attr-defined]


async def _arq_pool(config: AnygateConfig, keys: KeySpace, redis: Redis) -> ArqRedis:
    """arq's client, with our socket timeouts (arq sets none for commands: a paused Redis
    would hang it) and bytes replies (arq decodes its own).

    arq does not speak Cluster; on one, every arq key hashes to the home slot (``control.arq_id``)
    and arq talks to the node that serves it, found anew at each session's start: a session
    ends on any Redis error, a slot that moved (MOVED) included."""
    options = redis_options(config.redis)
    options["decode_responses"] = False
    cluster = as_cluster(redis)
    if cluster is None:
        pool = connection_pool(config.redis, options, blocking=False)
    else:
        await cluster.initialize()
        home = cluster.home().connection_pool.connection_kwargs
        options.pop("connection_class", None)
        pool = ConnectionPool(host=home["host"], port=home["port"], **options)
    return ArqRedis(pool, default_queue_name=queue_name(keys))


async def run_control(config: AnygateConfig, *, watch_config: bool = False) -> None:
    """Sessions one after another, until cancelled. ``watch_config``: reload the config when
    its file changes, besides on SIGHUP (docs/operations.md#reloading-configuration)."""
    link = RedisLink("control")
    redis = create_redis(config.redis)
    watch = asyncio.create_task(link.watch(redis), name="redis-watch")
    leftovers = _Leftovers()
    cluster = _cluster_series(config, redis)
    state = ConfigState(config)
    live: list[_Session] = []

    async def apply_config(new: AnygateConfig, _plan: ReloadPlan) -> None:
        """The live session's objects rebuilt and swapped; the next sessions start from
        ``state.config``, which the reloader advances once this returns."""
        done = None
        while live and live[0] is not done:  # a session that began meanwhile gets it too
            done = live[0]
            await done.reconfigure(new)
        if cluster is not None:
            cluster[0].use_config(new)

    reloader = ConfigReloader(
        state, apply_config, process="control", observe=record_config, watch=watch_config
    )
    reloader.start()
    log.info("control plane starting", namespace=config.redis.namespace)
    try:
        while True:
            session = await link.retry(lambda: _Session.start(state.config, redis, link, leftovers))
            assert session is not None  # no `until`: retry returns only with a session
            live[:] = [session]
            grace_s = CLOSE_GRACE_S  # stopping: be quick
            try:
                await session.serve()
            except Exception as exc:
                if not is_outage(exc):
                    raise
                link.lost(exc)
                grace_s = _outage_grace_s(state.config)
            finally:
                live.clear()
                await session.close(leftovers, grace_s=grace_s, redis_up=not link.down)
    finally:
        await reloader.stop()
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
        if cluster is not None:
            collector, refresh = cluster
            refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresh
            unregister_collector(collector)
        await redis.aclose()


def _cluster_series(
    config: AnygateConfig, redis: Redis
) -> tuple[ClusterCollector, asyncio.Task[None]] | None:
    """The cluster series (docs/metrics.md), read from Redis every few seconds and served with
    this process's own on ``--metrics-port``. Once per process, not per session: a session
    begins again after every Redis outage, and a collector registered twice is refused."""
    if not config.metrics.enabled:
        return None
    collector = ClusterCollector(
        redis,
        KeySpace.of(config),
        config,
        tenant_label=config.metrics.tenant_label,
    )
    register_collector(collector)
    return collector, start_refresh(collector)


async def main(config: AnygateConfig, *, watch_config: bool = False) -> None:
    """The ``anygate control`` process: ``run_control`` until SIGTERM or SIGINT."""
    # arq logs two lines per job at INFO: several a second from the cron ticks alone.
    logging.getLogger("arq").setLevel(max(logging.getLogger().level, logging.WARNING))
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await run_control(config, watch_config=watch_config)
    except asyncio.CancelledError:
        log.info("control plane stopped")
