"""What the Overview reads (docs/console.md#overview), each part through the reader the admin API
already uses: the lanes, pool counts and worker registry (``AdminQueries``, as ``/admin/queues``
and ``/admin/workers``), the deployments' health (``peek``, as ``/admin/deployments``) and the
cluster's job counters (``metrics:jobs`` on every shard, as the metrics scrape reads them). The
figures are made by ``overview_model``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from starlette.requests import Request

from anygate.api.admin_deployments import configured_deployments
from anygate.api.console.overview_model import (
    DeploymentRow,
    ErrorRow,
    LaneRow,
    PoolRow,
    Rates,
    SampleWindow,
    WorkerRow,
    deployment_rows,
    error_rows,
    lane_rows,
    pool_rows,
    sample_of,
    worker_rows,
)
from anygate.api.gateway import Gateway
from anygate.broker.admin_queries import AdminQueries
from anygate.broker.cluster_counters import decode_job_counts
from anygate.broker.connection import awaited
from anygate.broker.shard_sums import sum_fields


@dataclass(frozen=True, slots=True)
class OverviewData:
    pools: list[PoolRow]
    lanes: list[LaneRow]
    lanes_truncated: bool
    workers: list[WorkerRow]
    deployments: list[DeploymentRow]
    errors: list[ErrorRow]
    rates: Rates | None
    breaker_enabled: bool


def sample_window(request: Request) -> SampleWindow:
    """One per process, shared by every Overview page and stream."""
    state = request.app.state
    window: SampleWindow | None = getattr(state, "overview_samples", None)
    if window is None:
        window = SampleWindow()
        state.overview_samples = window
    return window


async def _job_counters(gw: Gateway) -> dict[str, str]:
    """``metrics:jobs`` summed over the shards (each counts what its own scripts changed)."""
    keys = gw.broker.keys
    hashes = [await awaited(gw.redis.hgetall(keys.on(s).metrics_jobs)) for s in keys.shards]
    return sum_fields(hashes)


async def read_overview(request: Request, gw: Gateway) -> OverviewData:
    config = gw.config
    pools = sorted(config.providers)
    queries = AdminQueries(gw.redis, gw.broker.keys)
    seconds, micros = await awaited(gw.redis.time())  # Redis's clock, as the lane entry ids
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    found = configured_deployments(config)
    (lanes, truncated), counts, registry, counters, peeks = await asyncio.gather(
        queries.lanes(),
        queries.pool_counts(pools),
        queries.workers(pools),
        _job_counters(gw),
        asyncio.gather(*(gw.broker.peek_health(d.id) for d in found)),
    )
    rates = sample_window(request).add(sample_of(decode_job_counts(counters), now_ms / 1000))
    alive_within_ms = int(3 * config.queue.heartbeat_interval_s * 1000)
    return OverviewData(
        pools=pool_rows(pools, counts, rates),
        lanes=lane_rows(pools, lanes, now_ms, rates),
        lanes_truncated=truncated,
        workers=worker_rows(pools, registry, now_ms, alive_within_ms),
        deployments=deployment_rows(found, list(peeks)),
        errors=error_rows(rates),
        rates=rates,
        breaker_enabled=config.queue.breaker.enabled,
    )
