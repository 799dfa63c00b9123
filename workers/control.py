"""The control plane, on arq: periodic housekeeping that no request path should pay for.

arq is kept behind this one module (upstream has it in maintenance mode): the data plane never
touches it, and replacing it means rewriting only this file. Today it prunes each tenant's job
index of jobs whose records expired, drives batches (expansion, cancellation, expiry,
finalisation with usage roll-up: ``batch_driver.py``) and delivers their webhooks.
"""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from arq import Retry, cron, func
from arq.connections import RedisSettings
from arq.worker import Worker as ArqWorker

from anygate.api.planning import Planner
from anygate.broker import Broker, JobRecord, KeySpace, create_redis
from anygate.broker.batch_store import Batch
from anygate.broker.deployment_health import HealthView
from anygate.broker.tenant_store import TenantStore
from anygate.config import AnygateConfig
from anygate.workers.batch_driver import BatchDriver
from anygate.workers.webhooks import MAX_TRIES, post_webhook

log = structlog.get_logger(__name__)

PRUNE_BATCH = 500


async def prune_job_indexes(ctx: dict[str, Any]) -> int:
    """Drop index entries whose job record has expired; bounded work per tenant per run."""
    config: AnygateConfig = ctx["config"]
    keys = KeySpace(config.redis.namespace)
    redis = ctx["anygate_redis"]
    removed = 0
    # every tenant that ever was, deleted ones too: their jobs' records expire all the same
    for tenant_id in await TenantStore(redis, keys).all_ids():
        index = keys.tenant_jobs(tenant_id)
        oldest = await redis.xrange(index, count=PRUNE_BATCH)
        if not oldest:
            continue
        async with redis.pipeline(transaction=False) as pipe:
            for _eid, fields in oldest:
                pipe.exists(keys.job(fields["j"]))
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


async def enqueue_webhook(
    ctx: dict[str, Any], url: str, event: str, subject_id: str, data: dict[str, Any]
) -> None:
    """One delivery per job or batch: arq's job id (``webhook:<id>``) keeps a repeat from
    queueing a second one, and the delivery id stays the receiver's deduplication key."""
    body = orjson.dumps({"type": event, "data": data})
    await ctx["redis"].enqueue_job(
        "deliver_webhook", url, body, event, f"dlv_{subject_id}",
        _queue_name=ctx["queue"], _job_id=f"webhook:{subject_id}",
    )  # fmt: skip


async def hand_over_job_webhooks(ctx: dict[str, Any]) -> int:
    """Every second: ended jobs with a ``webhook_url`` (listed by the job scripts) become arq
    deliveries. Enqueued before they leave the list, and deduplicated by arq's job id, so a
    crash in between delivers twice at worst (the delivery id lets a receiver drop it)."""
    redis = ctx["anygate_redis"]
    keys: KeySpace = ctx["keys"]
    handed = 0
    while job_ids := await redis.lrange(keys.job_webhooks, 0, 99):
        for job_id in job_ids:
            h = await redis.hgetall(keys.job(job_id))
            if h.get("webhook_url"):
                record = JobRecord.from_hash(job_id, h)
                event = f"job.{record.status.value}"
                await enqueue_webhook(ctx, h["webhook_url"], event, job_id, record.to_api())
                handed += 1
        await redis.ltrim(keys.job_webhooks, len(job_ids), -1)
    return handed


async def deliver_webhook(
    ctx: dict[str, Any], url: str, body: bytes, event: str, delivery_id: str
) -> None:
    config: AnygateConfig = ctx["config"]
    ref = config.security.webhook_secret
    if ref is None:
        log.warning(
            "webhook dropped: security.webhook_secret is not set",
            delivery=delivery_id, webhook_event=event,
        )  # fmt: skip
        return
    secret = ref.resolve().get_secret_value().encode()
    delay = await post_webhook(
        secret, url, body, event=event, delivery_id=delivery_id,
        attempt=int(ctx.get("job_try", 1)),
    )  # fmt: skip
    if delay is not None:
        raise Retry(defer=delay)


def control_worker(config: AnygateConfig) -> ArqWorker:
    async def startup(ctx: dict[str, Any]) -> None:
        redis = ctx["anygate_redis"] = create_redis(config.redis)
        ctx["keys"], ctx["queue"] = keys, queue
        await TenantStore(redis, keys).seed(config, keys=False)
        broker = Broker(redis, config)
        health = HealthView()

        async def on_webhook(batch: Batch) -> None:
            event = f"batch.{batch.status}"
            await enqueue_webhook(ctx, batch.h["webhook_url"], event, batch.id, batch.to_api())

        ctx["batch_driver"] = BatchDriver(
            config, redis, broker, Planner(config, redis, health), on_webhook
        )

    async def shutdown(ctx: dict[str, Any]) -> None:
        await ctx["anygate_redis"].aclose()

    keys = KeySpace(config.redis.namespace)
    queue = f"{keys.prefix}control"
    return ArqWorker(
        functions=[func(deliver_webhook, max_tries=MAX_TRIES + 1)],
        cron_jobs=[
            cron(prune_job_indexes, second={0}, run_at_startup=True),
            cron(hand_over_job_webhooks, second=set(range(60)), unique=True, timeout=60),
            cron(
                drive_batches,
                second=set(range(60)),
                run_at_startup=True,
                unique=True,
                timeout=60,
            ),
        ],
        redis_settings=RedisSettings.from_dsn(config.redis.url),
        queue_name=queue,
        ctx={"config": config},
        on_startup=startup,
        on_shutdown=shutdown,
        handle_signals=True,
        log_results=False,
    )
