"""The control plane, on arq: periodic housekeeping that no request path should pay for.

arq is kept behind this one module (upstream has it in maintenance mode): the data plane never
touches it, and replacing it means rewriting only this file. Today it prunes each tenant's job
index of jobs whose records expired; batch expansion, webhooks and usage roll-ups join here.
"""

from __future__ import annotations

from typing import Any

import structlog
from arq import cron
from arq.connections import RedisSettings
from arq.worker import Worker as ArqWorker

from anygate.broker import KeySpace, create_redis
from anygate.broker.tenant_store import TenantStore
from anygate.config import AnygateConfig

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


def control_worker(config: AnygateConfig) -> ArqWorker:
    async def startup(ctx: dict[str, Any]) -> None:
        ctx["anygate_redis"] = create_redis(config.redis)
        await TenantStore(ctx["anygate_redis"], keys).seed(config, keys=False)

    async def shutdown(ctx: dict[str, Any]) -> None:
        await ctx["anygate_redis"].aclose()

    keys = KeySpace(config.redis.namespace)
    return ArqWorker(
        functions=[],
        cron_jobs=[cron(prune_job_indexes, second={0}, run_at_startup=True)],
        redis_settings=RedisSettings.from_dsn(config.redis.url),
        queue_name=f"{keys.prefix}control",
        ctx={"config": config},
        on_startup=startup,
        on_shutdown=shutdown,
        handle_signals=True,
        log_results=False,
    )
