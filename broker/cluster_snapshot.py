"""What the cluster series show (docs/metrics.md), read from Redis in a few pipelined round trips
and held as plain data: ``cluster_metrics.families`` turns it into metric families.

Everything here is read from what the scripts already keep, never found by a scan: the counter
hashes (``cluster_counters``), each pool's stats hash (its ``q:<class>:<tenant>`` fields are the
jobs waiting in each lane), dead-letter lists, worker registries, the deployments' health hashes,
the active batches and the tenants' usage hashes. Only the oldest waiting job's age needs a look
into the lanes, two commands per lane with jobs waiting, at most ``MAX_AGE_LANES`` lanes.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from anygate.broker.admin_queries import entry_ms
from anygate.broker.cluster_counters import (
    JobCounts,
    TokenCounts,
    decode_job_counts,
    decode_token_counts,
)
from anygate.broker.connection import awaited
from anygate.broker.keys import CLASS_ORDER, KeySpace
from anygate.broker.quotas import UsagePeriods, usage_periods
from anygate.broker.routing import deployment_key
from anygate.broker.script_calls.health import BreakerState
from anygate.broker.shard_sums import sum_fields
from anygate.broker.tenants import TenantRecord
from anygate.broker.worker_registry import decode_registry_value
from anygate.config import AnygateConfig, Priority, TenantConfig, TenantQuotas

MAX_AGE_LANES = 256
"""Lanes looked into for the oldest waiting job's age per scrape; beyond them (a namespace
with that many tenants waiting at once) the age shown is the oldest among these."""

MAX_BATCHES = 1000
"""Active batches whose lines are counted per scrape."""


class BreakerGauge(enum.StrEnum):
    """``anygate_breaker_state``'s ``state`` label."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    COOLING = "cooling"


class BatchLineState(enum.StrEnum):
    """``anygate_batch_lines``' ``state`` label."""

    QUEUED = "queued"
    """Lines of an active batch not yet handed to the broker as jobs."""
    RUNNING = "running"
    """Lines handed to the broker (their job queued or running) that have not ended."""
    COMPLETED = "completed"
    FAILED = "failed"
    """Lines that ended otherwise: failed, refused, cancelled or expired."""


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    pools: tuple[str, ...] = ()
    jobs: JobCounts = field(default_factory=JobCounts)
    tokens: TokenCounts = field(default_factory=TokenCounts)
    dead_letters: dict[str, int] = field(default_factory=dict)
    """By pool."""
    queue_depth: dict[tuple[str, Priority], int] = field(default_factory=dict)
    """Jobs waiting in their lanes, by (pool, class); every pool and class has an entry. Jobs
    waiting to be redelivered or retried are the pool's, in no class's lanes, and not counted."""
    oldest_age_s: dict[tuple[str, Priority], float] = field(default_factory=dict)
    """The oldest job waiting in a lane, by (pool, class); 0 when none waits."""
    breakers: dict[str, BreakerGauge] = field(default_factory=dict)
    """By deployment (``provider:model``)."""
    batch_lines: dict[BatchLineState, int] = field(default_factory=dict)
    budget_used: dict[tuple[str, str], float] = field(default_factory=dict)
    """By (tenant, ``day`` | ``month``): spent ÷ budget, the larger of the token and the USD
    ratio where both are set; only tenants with a budget for the period."""
    workers_alive: dict[str, int] = field(default_factory=dict)
    """By pool."""


# --- pure readings ----------------------------------------------------------------------------


def breaker_gauge(
    state: str | None, open_until: str | None, cool_until: str | None, now_ms: int
) -> BreakerGauge:
    """A health hash's ``state``, ``until`` and ``cool`` (``health-1.lua``) as one state: an
    open breaker whose cool-down ended waits for its probe, which is half open."""
    until = int(open_until or 0)
    if state == BreakerState.OPEN and until > now_ms:
        return BreakerGauge.OPEN
    if state in (BreakerState.OPEN, BreakerState.HALF):
        return BreakerGauge.HALF_OPEN
    if int(cool_until or 0) > now_ms:
        return BreakerGauge.COOLING
    return BreakerGauge.CLOSED


def lane_depths(stats: Mapping[str, str]) -> dict[Priority, dict[str, int]]:
    """A pool's stats hash: the jobs waiting in each tenant's lane (``q:<class>:<tenant>``,
    kept by the scripts), by class; lanes with none left out."""
    depths: dict[Priority, dict[str, int]] = {p: {} for p in CLASS_ORDER}
    for name, value in stats.items():
        kind, _, rest = name.partition(":")
        cls, sep, tenant = rest.partition(":")
        if kind != "q" or not sep:
            continue
        try:
            priority, n = Priority(cls), int(value)
        except ValueError:
            continue
        if n > 0:
            depths[priority][tenant] = n
    return depths


def budget_ratios(
    quotas: TenantQuotas, day: Sequence[str | None], month: Sequence[str | None]
) -> dict[str, float]:
    """A tenant's spent share of each budget it has, from its usage hashes' ``tokens`` and
    ``cost_usd`` in the day and the month (``finish-5.lua``)."""
    found = {}
    for period, used, tokens_limit, usd_limit in (
        ("day", day, quotas.daily_tokens, quotas.daily_usd),
        ("month", month, quotas.monthly_tokens, quotas.monthly_usd),
    ):
        ratios = []
        if tokens_limit is not None:
            ratios.append(float(used[0] or 0) / tokens_limit)
        if usd_limit is not None:
            ratios.append(float(used[1] or 0) / usd_limit)
        if ratios:
            found[period] = max(ratios)
    return found


def batch_lines(batches: Iterable[Sequence[str | None]]) -> dict[BatchLineState, int]:
    """Active batches' ``total``, ``expanded``, ``expanded_all``, ``n_done``, ``n_succeeded``
    summed into lines by state. Lines a wound-down batch never expanded are counted done (in
    ``n_done``) without being expanded: ``expanded_all`` says none waits any more."""
    lines = dict.fromkeys(BatchLineState, 0)
    for total_s, expanded_s, expanded_all, done_s, succeeded_s in batches:
        total, expanded = int(total_s or 0), int(expanded_s or 0)
        done, succeeded = int(done_s or 0), int(succeeded_s or 0)
        waiting = 0 if expanded_all == "1" else max(0, total - expanded)
        lines[BatchLineState.QUEUED] += waiting
        lines[BatchLineState.RUNNING] += max(0, total - done - waiting)
        lines[BatchLineState.COMPLETED] += succeeded
        lines[BatchLineState.FAILED] += max(0, done - succeeded)
    return lines


def deployments_of(config: AnygateConfig) -> list[str]:
    return sorted(
        {deployment_key(d) for route in config.models.values() for d in route.deployments}
    )


# --- Redis ------------------------------------------------------------------------------------

_Tenant = TenantConfig | TenantRecord


async def snapshot(
    redis: Redis,
    keys: KeySpace,
    config: AnygateConfig,
    *,
    tenants: Sequence[_Tenant] | None = None,
) -> ClusterSnapshot:
    """Three pipelined round trips: the hashes and lists, then the active batches and the
    waiting lanes' consumer groups, then each waiting lane's oldest undelivered entry.
    ``tenants``: whose budgets to show (default: the configured tenants)."""
    pools = tuple(sorted(config.providers))
    deployments = deployments_of(config)
    budgeted = [
        t for t in (config.tenants if tenants is None else tenants) if _has_budget(t.quotas)
    ]
    periods = usage_periods(datetime.now(UTC))
    k = keys
    seconds, micros = await awaited(redis.time())  # a cluster pipeline refuses keyless TIME
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(k.metrics_jobs)
        pipe.hgetall(k.metrics_tokens)
        for pool in pools:
            pipe.llen(k.dead(pool))
            pipe.hgetall(k.stats(pool))
            pipe.hgetall(k.workers(pool))
        for dep in deployments:
            pipe.hmget(k.deployment_health(dep), ["state", "until", "cool"])
        pipe.srandmember(k.active_batches, MAX_BATCHES)
        for tenant in budgeted:
            pipe.hmget(k.tenant_usage(tenant.id, periods.day), ["tokens", "cost_usd"])
            pipe.hmget(k.tenant_usage(tenant.id, periods.month), ["tokens", "cost_usd"])
        replies: list[Any] = await pipe.execute()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    at = 2
    dead, depths, alive = {}, {}, {}
    alive_within_ms = int(3 * config.queue.heartbeat_interval_s * 1000)
    for pool in pools:
        dead[pool] = int(replies[at])
        depths[pool] = lane_depths(replies[at + 1])
        alive[pool] = _alive(replies[at + 2], now_ms, alive_within_ms)
        at += 3
    breakers = {}
    for dep in deployments:
        state, open_until, cool_until = replies[at]
        breakers[dep] = breaker_gauge(state, open_until, cool_until, now_ms)
        at += 1
    batch_ids: list[str] = replies[at] or []
    at += 1
    usage = replies[at:]
    jobs, tokens = replies[0], replies[1]
    for shard in keys.shards[1:]:  # each shard counts what its scripts changed
        more = await _shard_counters(redis, keys.on(shard), budgeted, periods)
        jobs, tokens = sum_fields([jobs, more[0]]), sum_fields([tokens, more[1]])
        usage = [_add_pair(a, b) for a, b in zip(usage, more[2:], strict=True)]
    budgets = {}
    for n, tenant in enumerate(budgeted):
        for period, ratio in budget_ratios(tenant.quotas, usage[2 * n], usage[2 * n + 1]).items():
            budgets[(tenant.id, period)] = ratio
    lanes, batches = await _lanes_and_batches(redis, keys, depths, batch_ids, now_ms)
    depth_of = {(pool, p): sum(depths[pool][p].values()) for pool in pools for p in CLASS_ORDER}
    return ClusterSnapshot(
        pools=pools,
        jobs=decode_job_counts(jobs),
        tokens=decode_token_counts(tokens),
        dead_letters=dead,
        queue_depth=depth_of,
        oldest_age_s={key: lanes.get(key, 0.0) for key in depth_of},
        breakers=breakers,
        batch_lines=batch_lines(batches),
        budget_used=budgets,
        workers_alive=alive,
    )


async def _shard_counters(
    redis: Redis, k: KeySpace, budgeted: Sequence[_Tenant], periods: UsagePeriods
) -> list[Any]:
    """One shard's cluster counters and the budgeted tenants' usage (day, month) on it."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(k.metrics_jobs)
        pipe.hgetall(k.metrics_tokens)
        for tenant in budgeted:
            pipe.hmget(k.tenant_usage(tenant.id, periods.day), ["tokens", "cost_usd"])
            pipe.hmget(k.tenant_usage(tenant.id, periods.month), ["tokens", "cost_usd"])
        replies: list[Any] = await pipe.execute()
    return replies


def _add_pair(a: list[str | None], b: list[str | None]) -> list[str | None]:
    """(tokens, cost) read on two shards, added; None where neither has any."""
    out: list[str | None] = []
    for x, y in zip(a, b, strict=True):
        if x is None and y is None:
            out.append(None)
        else:
            out.append(sum_fields([{"v": x or "0"}, {"v": y or "0"}])["v"])
    return out


async def _with_shard_counts(
    redis: Redis, keys: KeySpace, batch_id: str, row: list[str | None]
) -> list[str | None]:
    """A batch's ``n_done`` and ``n_succeeded`` with the counts its jobs left on other shards
    (``batch_store.BatchStore.load`` adds them the same way)."""
    done, succeeded = int(row[3] or 0), int(row[4] or 0)
    for shard in keys.shards[1:]:
        more = await awaited(
            redis.hmget(keys.on(shard).batch_done(batch_id), ["n_done", "n_succeeded"])
        )
        done, succeeded = done + int(more[0] or 0), succeeded + int(more[1] or 0)
    return [*row[:3], str(done), str(succeeded)]


def _has_budget(q: TenantQuotas) -> bool:
    limits = (q.daily_tokens, q.daily_usd, q.monthly_tokens, q.monthly_usd)
    return any(v is not None for v in limits)


def _alive(registry: Mapping[str, str], now_ms: int, within_ms: int) -> int:
    """Workers whose heartbeat is younger than three intervals (as the admin API says)."""
    values = (decode_registry_value(v) for v in registry.values())
    return sum(1 for v in values if v is not None and now_ms - v.heartbeat_ms < within_ms)


async def _lanes_and_batches(
    redis: Redis,
    keys: KeySpace,
    depths: Mapping[str, Mapping[Priority, Mapping[str, int]]],
    batch_ids: Sequence[str],
    now_ms: int,
) -> tuple[dict[tuple[str, Priority], float], list[list[str | None]]]:
    """The oldest waiting job's age by (pool, class), and the active batches' line counts. A
    lane's waiting jobs follow its consumer group's last delivered entry."""
    waiting = [
        (pool, p, keys.lane(pool, p, tenant))
        for pool, by_class in depths.items()
        for p, tenants in by_class.items()
        for tenant in tenants
    ][:MAX_AGE_LANES]
    async with redis.pipeline(transaction=False) as pipe:
        for bid in batch_ids:
            pipe.hmget(
                keys.batch(bid), ["total", "expanded", "expanded_all", "n_done", "n_succeeded"]
            )
        for _pool, _p, lane in waiting:
            pipe.xinfo_groups(lane)
        replies = await pipe.execute(raise_on_error=False)
    found_batches = [
        (bid, r)
        for bid, r in zip(batch_ids, replies[: len(batch_ids)], strict=True)
        if isinstance(r, list) and r[0] is not None
    ]
    batches = [await _with_shard_counts(redis, keys, bid, r) for bid, r in found_batches]
    groups = replies[len(batch_ids) :]
    heads: list[tuple[str, Priority, str, str]] = []
    for (pool, p, lane), found in zip(waiting, groups, strict=True):
        if isinstance(found, Exception):
            continue  # drained and deleted since the stats were read
        group = next((g for g in found if g.get("name") == "g"), None)
        heads.append((pool, p, lane, str(group["last-delivered-id"]) if group else "0-0"))
    ages: dict[tuple[str, Priority], float] = {}
    if not heads:
        return ages, batches
    async with redis.pipeline(transaction=False) as pipe:
        for _pool, _p, lane, last in heads:
            pipe.xrange(lane, min=f"({last}", max="+", count=1)
        entries = await pipe.execute(raise_on_error=False)
    for (pool, p, _lane, _last), head in zip(heads, entries, strict=True):
        if head and not isinstance(head, Exception):
            age = max(0.0, (now_ms - entry_ms(head[0][0])) / 1000)
            ages[(pool, p)] = max(ages.get((pool, p), 0.0), age)
    return ages, batches
