"""The control plane, on arq: periodic housekeeping that no request path should pay for.

arq is kept behind this module and ``control_runner.py`` (upstream has it in maintenance
mode): the data plane never touches it, and replacing it means rewriting only these two. This
one holds the control plane's jobs and builds one arq worker from them: it prunes each
tenant's job index of jobs whose records expired, drives batches (expansion, cancellation,
expiry, finalisation with usage roll-up: ``batch_driver.py``), sends patient jobs to providers'
own Batch APIs (``provider_batch/collector.py``) and delivers webhooks.
``control_runner.py`` keeps arq workers running, one after another, across Redis outages.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from arq import Retry, cron, func
from arq.typing import WorkerCoroutine

from anygate.broker import Broker, JobRecord, KeySpace
from anygate.broker.batch_store import Batch
from anygate.broker.deployment_health import HealthView
from anygate.broker.redis_link import RedisLink, is_outage
from anygate.broker.tenant_store import TenantStore
from anygate.config import AnygateConfig
from anygate.core.planning import Planner
from anygate.telemetry import count_webhook
from anygate.workers.batch_driver import BatchDriver
from anygate.workers.budget_warnings import BudgetWatch
from anygate.workers.metric_labels import webhook_kind
from anygate.workers.provider_batch.collector import Collector
from anygate.workers.webhooks import MAX_TRIES, TIMEOUT_S, post_webhook

log = structlog.get_logger(__name__)

PRUNE_BATCH = 500


async def prune_job_indexes(ctx: dict[str, Any]) -> int:
    """Drop index entries whose job record has expired; bounded work per tenant per run."""
    config: AnygateConfig = ctx["config"]
    keys = KeySpace.of(config)
    redis = ctx["anygate_redis"]
    removed = 0
    # every tenant that ever was, deleted ones too: their jobs' records expire all the same
    for tenant_id in await TenantStore(redis, keys).all_ids():
        for shard in keys.shards:  # each shard indexes the jobs queued on it
            on = keys.on(shard)
            index = on.tenant_jobs(tenant_id)
            oldest = await redis.xrange(index, count=PRUNE_BATCH)
            if not oldest:
                continue
            async with redis.pipeline(transaction=False) as pipe:
                for _eid, fields in oldest:
                    pipe.exists(keys.for_job(fields["j"]).job(fields["j"]))
                alive = await pipe.execute()
            gone = [eid for (eid, _f), ok in zip(oldest, alive, strict=True) if not ok]
            if gone:
                removed += int(await redis.xdel(index, *gone))
    if removed:
        log.info("pruned expired jobs from tenant indexes", removed=removed)
    return removed


async def drive_batches(ctx: dict[str, Any]) -> int:
    """Every second: expand, wind down and finalise batches (``batch_driver.py``)."""
    driver: BatchDriver = ctx["batch_driver"]
    return await driver.tick()


async def collect_provider_batches(ctx: dict[str, Any]) -> int:
    """Every second: parked jobs into provider batches, and batches followed to their end
    (``provider_batch/collector.py``)."""
    collector: Collector = ctx["provider_batches"]
    return await collector.tick()


async def check_budgets(ctx: dict[str, Any]) -> int:
    """Every ``budget_warnings.check_interval_s``: announce budget thresholds newly crossed
    (``budget_warnings.py``)."""
    watch: BudgetWatch = ctx["budget_watch"]
    return len(await watch.check(datetime.now(UTC)))


async def enqueue_webhook(
    ctx: dict[str, Any], url: str, event: str, subject_id: str, data: dict[str, Any]
) -> None:
    """One delivery per job or batch: arq's job id (``webhook:<id>``) keeps a repeat from
    queueing a second one, and the delivery id stays the receiver's deduplication key."""
    body = orjson.dumps({"type": event, "data": data})
    await ctx["redis"].enqueue_job(
        "deliver_webhook",
        url,
        body,
        event,
        f"dlv_{subject_id}",
        _queue_name=ctx["queue"],
        _job_id=arq_id(ctx["keys"], f"webhook:{subject_id}"),
    )


async def hand_over_job_webhooks(ctx: dict[str, Any]) -> int:
    """Every second: ended jobs with a ``webhook_url`` (listed by the job scripts) become arq
    deliveries. Enqueued before they leave the list, and deduplicated by arq's job id, so a
    crash in between delivers twice at worst (the delivery id lets a receiver drop it)."""
    redis = ctx["anygate_redis"]
    handed = 0
    for shard in ctx["keys"].shards:  # a job is listed on the shard it ended on
        keys: KeySpace = ctx["keys"].on(shard)
        while job_ids := await redis.lrange(keys.job_webhooks, 0, 99):
            for job_id in job_ids:
                h = await redis.hgetall(keys.job(job_id))
                if h.get("webhook_url"):
                    record = JobRecord.from_hash(job_id, h)
                    event = f"job.{record.status.value}"
                    await enqueue_webhook(ctx, h["webhook_url"], event, job_id, record.to_api())
                    handed += 1
                # each id leaves the list by itself: a trim by count would drop ids another
                # run (an overlapping tick, a second control process) had not handed over yet
                await redis.lrem(keys.job_webhooks, 1, job_id)
    return handed


async def reclaim_leases(ctx: dict[str, Any]) -> int:
    """Every second, for every pool: redeliver jobs whose worker stopped heartbeating. Workers
    do it too; this is for a pool whose last worker died, so that its streaming callers hear
    of it within seconds and its jobs wait at the front of the line."""
    config: AnygateConfig = ctx["config"]
    broker: Broker = ctx["broker"]
    counts = [await broker.reclaim(pool) for pool in config.providers]
    return sum(c for c in counts if c > 0)


async def deliver_webhook(
    ctx: dict[str, Any], url: str, body: bytes, event: str, delivery_id: str
) -> None:
    config: AnygateConfig = ctx["config"]
    ref = config.security.webhook_secret
    if ref is None:
        count_webhook(webhook_kind(event), "dropped")
        log.warning(
            "webhook dropped: security.webhook_secret is not set",
            delivery=delivery_id,
            webhook_event=event,
        )
        return
    secret = ref.resolve().get_secret_value().encode()
    delay = await post_webhook(
        secret,
        url,
        body,
        event=event,
        delivery_id=delivery_id,
        attempt=int(ctx.get("job_try", 1)),
    )
    if delay is not None:
        raise Retry(defer=delay)


def _quiet_on_outage(job: Callable[[dict[str, Any]], Awaitable[int]]) -> WorkerCoroutine:
    """A periodic job that meets a Redis outage reports it to the process's link (one warning
    per outage) and ends: left to arq, each tick would log a traceback. The next tick, or the
    next arq session (``control_runner.py``), carries on where this one stopped."""

    @functools.wraps(job)
    async def run(ctx: dict[str, Any], *_args: Any, **_kwargs: Any) -> int | None:
        try:
            return await job(ctx)
        except Exception as exc:
            if not is_outage(exc):
                raise
            link: RedisLink = ctx["link"]
            link.lost(exc)
            return None

    return run


async def prepare(ctx: dict[str, Any]) -> None:
    """An arq session's start-up work, run again by each new session: seed the config file's
    tenants, build the batch driver. ``ctx`` holds ``config``, ``anygate_redis``, ``keys``,
    ``queue`` and arq's ``redis`` (see ``control_runner.py``)."""
    config: AnygateConfig = ctx["config"]
    redis = ctx["anygate_redis"]
    await TenantStore(redis, ctx["keys"]).seed(config, keys=False)
    broker = ctx["broker"] = Broker(redis, config)

    async def on_webhook(batch: Batch) -> None:
        event = f"batch.{batch.status}"
        await enqueue_webhook(ctx, batch.h["webhook_url"], event, batch.id, batch.to_api())

    async def deliver(url: str, event: str, subject_id: str, data: dict[str, Any]) -> None:
        await enqueue_webhook(ctx, url, event, subject_id, data)

    ctx["budget_watch"] = BudgetWatch(redis, ctx["keys"], config.budget_warnings, deliver)
    ctx["batch_driver"] = BatchDriver(
        config, redis, broker, Planner(config, redis, HealthView()), on_webhook
    )
    ctx["provider_batches"] = Collector(config, broker)


def queue_name(keys: KeySpace) -> str:
    return f"{keys.home_prefix}control"


def arq_id(keys: KeySpace, name: str) -> str:
    """An arq job id or cron name under the namespace's hash tag: ``{<namespace>}<name>``."""
    return f"{{{keys.namespace}}}{name}"


def worker_settings(keys: KeySpace, budget_check_s: int = 5) -> dict[str, Any]:
    """What one arq worker of the control plane runs (``arq.worker.Worker`` arguments).

    Cron jobs are named after the namespace: arq derives a cron job's id (``<name>:<ms>``, its
    de-duplication key) from the name alone, so two namespaces sharing one Redis would
    otherwise take each other's ticks. The name carries the namespace in braces, as every arq
    id we make does (``arq_id``): arq's keys are ``arq:<kind>:<id>``, so on a Redis Cluster they
    all hash to the home slot, with the queue (docs/scaling.md)."""

    def every_second(job: Callable[[dict[str, Any]], Awaitable[int]], **extra: Any) -> Any:
        return cron(
            _quiet_on_outage(job),
            name=arq_id(keys, f"cron:{job.__name__}"),
            second=set(range(60)),
            unique=True,
            timeout=60,
            **extra,
        )

    prune = _quiet_on_outage(prune_job_indexes)
    return {
        # A delivery is one POST (webhooks.TIMEOUT_S). arq marks a running job in-progress for
        # the longest timeout of all + 10 s: with every timeout set, a job whose worker died
        # mid-run is picked up again after 70 s, not arq's default 310 s.
        "functions": [func(deliver_webhook, max_tries=MAX_TRIES + 1, timeout=3 * TIMEOUT_S)],
        "cron_jobs": [
            cron(
                prune,
                name=arq_id(keys, "cron:prune_job_indexes"),
                second={0},
                run_at_startup=True,
                timeout=60,
            ),
            every_second(hand_over_job_webhooks),
            every_second(reclaim_leases),
            every_second(drive_batches, run_at_startup=True),
            every_second(collect_provider_batches),
            cron(
                _quiet_on_outage(check_budgets),
                name=arq_id(keys, "cron:check_budgets"),
                second=set(range(0, 60, budget_check_s)),
                unique=True,
                timeout=60,
            ),
        ],
        "queue_name": queue_name(keys),
        "log_results": False,
        "keep_result": 0,  # nothing reads a delivery's or a tick's result: keep none
    }
