"""The cluster series (docs/metrics.md) as a prometheus_client collector, for the control process.

prometheus_client calls ``collect()`` synchronously, from its HTTP server's thread, while our
Redis client is asynchronous: so the collector reads Redis in ``refresh()`` (on the event loop,
on a short timer: ``start_refresh``) and ``collect()`` only turns the last snapshot into metric
families. Every control process shows the same values; aggregate them with
``max without(instance)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Final

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.asyncio import Redis
from redis.exceptions import RedisError

from anygate.broker.cluster_counters import NANO_USD
from anygate.broker.cluster_snapshot import (
    BatchLineState,
    BreakerGauge,
    ClusterSnapshot,
    snapshot,
)
from anygate.broker.keys import KeySpace
from anygate.broker.tenant_store import TenantStore
from anygate.broker.tenants import TenantRecord
from anygate.config import AnygateConfig

log = structlog.get_logger(__name__)

REFRESH_INTERVAL_S: Final = 5.0
"""How often ``start_refresh`` reads Redis: well under a usual scrape interval (15 s)."""


def families(snap: ClusterSnapshot, tenant_label: bool) -> list[Metric]:
    """Every cluster series of ``snap``. Without ``tenant_label`` (config
    ``metrics.tenant_label: false``), tokens and cost are summed over tenants per model."""
    submitted = CounterMetricFamily(
        "anygate_jobs_submitted_total",
        "Jobs accepted into a queue.",
        labels=["pool", "class", "model"],
    )
    for (pool, cls, model), n in sorted(snap.jobs.submitted.items()):
        submitted.add_metric([pool, cls, model], n)
    started = CounterMetricFamily(
        "anygate_jobs_started_total", "Attempts claimed by a worker.", labels=["pool", "model"]
    )
    for (pool, model), n in sorted(snap.jobs.started.items()):
        started.add_metric([pool, model], n)
    finished = CounterMetricFamily(
        "anygate_jobs_finished_total",
        "Jobs that reached a terminal status.",
        labels=["pool", "model", "outcome"],
    )
    for (pool, model, outcome), n in sorted(snap.jobs.finished.items()):
        finished.add_metric([pool, model, outcome], n)
    redelivered = CounterMetricFamily(
        "anygate_job_redeliveries_total",
        "Jobs put back in their queue when their worker's lease lapsed.",
        labels=["pool"],
    )
    for pool, n in sorted(snap.jobs.redelivered.items()):
        redelivered.add_metric([pool], n)
    return [
        submitted,
        started,
        finished,
        redelivered,
        *_queue_families(snap),
        *_token_families(snap, tenant_label),
        *_state_families(snap),
    ]


def _queue_families(snap: ClusterSnapshot) -> list[Metric]:
    dead = GaugeMetricFamily(
        "anygate_dead_letters", "Jobs failed for good, in the dead-letter list.", labels=["pool"]
    )
    for pool, n in sorted(snap.dead_letters.items()):
        dead.add_metric([pool], n)
    depth = GaugeMetricFamily(
        "anygate_queue_depth", "Jobs waiting in the class's lanes.", labels=["pool", "class"]
    )
    for (pool, cls), n in sorted(snap.queue_depth.items()):
        depth.add_metric([pool, cls.value], n)
    age = GaugeMetricFamily(
        "anygate_queue_oldest_age_seconds",
        "Age of the oldest job waiting in the class's lanes (0: none waits).",
        labels=["pool", "class"],
    )
    for (pool, cls), seconds in sorted(snap.oldest_age_s.items()):
        age.add_metric([pool, cls.value], seconds)
    return [dead, depth, age]


def _token_families(snap: ClusterSnapshot, tenant_label: bool) -> list[Metric]:
    labels = ["model", "tenant"] if tenant_label else ["model"]
    tokens: dict[tuple[str, ...], int] = {}
    for (model, tenant, kind), n in snap.tokens.tokens.items():
        key: tuple[str, ...] = (model, tenant, kind.value) if tenant_label else (model, kind.value)
        tokens[key] = tokens.get(key, 0) + n
    cost: dict[tuple[str, ...], int] = {}
    for (model, tenant), nano in snap.tokens.cost_nano_usd.items():
        key = (model, tenant) if tenant_label else (model,)
        cost[key] = cost.get(key, 0) + nano
    tokens_family = CounterMetricFamily(
        "anygate_tokens_total", "Tokens of succeeded jobs.", labels=[*labels, "kind"]
    )
    for key, n in sorted(tokens.items()):
        tokens_family.add_metric(list(key), n)
    cost_family = CounterMetricFamily(
        "anygate_cost_usd_total", "Cost of succeeded jobs, in USD.", labels=labels
    )
    for key, nano in sorted(cost.items()):
        cost_family.add_metric(list(key), nano / NANO_USD)
    return [tokens_family, cost_family]


def _state_families(snap: ClusterSnapshot) -> list[Metric]:
    breaker = GaugeMetricFamily(
        "anygate_breaker_state",
        "1 for the deployment's current state, 0 for the others.",
        labels=["deployment", "state"],
    )
    for deployment, current in sorted(snap.breakers.items()):
        for gauge in BreakerGauge:
            breaker.add_metric([deployment, gauge.value], 1 if gauge is current else 0)
    lines = GaugeMetricFamily(
        "anygate_batch_lines", "Lines of the active batches, by state.", labels=["state"]
    )
    if snap.batch_lines:
        for line_state in BatchLineState:
            lines.add_metric([line_state.value], snap.batch_lines.get(line_state, 0))
    budget = GaugeMetricFamily(
        "anygate_budget_used_ratio",
        "Spent share of the tenant's budget for the period.",
        labels=["tenant", "period"],
    )
    for (tenant, period), ratio in sorted(snap.budget_used.items()):
        budget.add_metric([tenant, period], ratio)
    workers = GaugeMetricFamily(
        "anygate_workers_alive", "Workers whose heartbeat is recent.", labels=["pool"]
    )
    for pool, n in sorted(snap.workers_alive.items()):
        workers.add_metric([pool], n)
    return [breaker, lines, budget, workers]


class ClusterCollector(Collector):
    """Register with a prometheus_client registry; keep it fresh with ``start_refresh``.
    Tenants with a budget are read from the tenant store, again only when it changed."""

    def __init__(
        self, redis: Redis, keys: KeySpace, config: AnygateConfig, *, tenant_label: bool = True
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._config = config
        self._tenant_label = tenant_label
        self._store = TenantStore(redis, keys)
        self._tenants: Sequence[TenantRecord] = ()
        self._tenants_version = -1
        self.last: ClusterSnapshot | None = None
        """The last snapshot read; None until the first refresh succeeds."""

    def use_config(self, config: AnygateConfig) -> None:
        """A config reload: the next refresh reads the new config's pools and deployments."""
        self._config = config

    async def refresh(self) -> ClusterSnapshot:
        version = await self._store.version()
        if version != self._tenants_version:
            self._tenants = await self._store.all_tenants()
            self._tenants_version = version
        self.last = await snapshot(self._redis, self._keys, self._config, tenants=self._tenants)
        return self.last

    def collect(self) -> Iterator[Metric]:
        if self.last is not None:
            yield from families(self.last, self._tenant_label)

    def describe(self) -> Iterator[Metric]:
        """The families' names, so a registry can refuse a clash before the first refresh."""
        yield from families(ClusterSnapshot(), self._tenant_label)


def start_refresh(
    collector: ClusterCollector, interval_s: float = REFRESH_INTERVAL_S
) -> asyncio.Task[None]:
    """Refresh now and every ``interval_s`` on the running loop until the task is cancelled.
    A failed read keeps the last snapshot (counters stay right; gauges go stale); an outage is
    logged when it begins and when it ends, without a traceback, not on every tick."""

    async def loop() -> None:
        failing = False
        while True:
            try:
                await collector.refresh()
            except (RedisError, OSError) as exc:
                if not failing:
                    log.warning("cluster metrics not refreshed", error=type(exc).__name__)
                failing = True
            else:
                if failing:
                    log.info("cluster metrics refreshed again")
                failing = False
            await asyncio.sleep(interval_s)

    return asyncio.create_task(loop(), name="cluster-metrics-refresh")
