"""Budget warnings from the control plane (docs/operations.md#budget-warnings).

Every ``budget_warnings.check_interval_s`` the control process reads the usage hashes of each
tenant that has a budget (two HGETALLs per tenant, in one pipeline) and announces each threshold
newly crossed (``budget_policy.py``): a ``budget threshold crossed`` warning in the log and a
signed webhook, delivered and retried like a job's (``control.enqueue_webhook``).

Why a periodic check and not the finish path: the finish path runs in every worker on every
job, and budgets concern a handful of tenants; a check every few seconds costs Redis a few
reads, keeps the hot path untouched, and a warning a few seconds late is still on time.

Once per threshold per period, whatever the number of control processes and restarts: a
crossing is announced only by whoever sets its mark (SET NX, expiring a day after its period
ends). The mark is set before the delivery is queued; if queueing fails (Redis went away), the
mark is removed again so the next check retries, and a crash in between loses that one warning
rather than sending it twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import structlog
from redis.asyncio import Redis

from anygate.broker.connection import awaited
from anygate.broker.keys import KeySpace
from anygate.broker.quotas import usage_periods
from anygate.broker.shard_sums import sum_fields
from anygate.broker.tenant_store import TenantStore
from anygate.broker.tenants import TenantRecord
from anygate.config import BudgetWarningsConfig
from anygate.telemetry import count_budget_warning
from anygate.workers.budget_policy import (
    Crossing,
    Usage,
    budgets,
    crossed,
    mark_ttl_s,
    newly_crossed,
)

log = structlog.get_logger(__name__)

EVENT = "budget.threshold_crossed"

Deliver = Callable[[str, str, str, dict[str, Any]], Awaitable[None]]
"""``(url, event, subject id, data)``: queue one signed delivery (``control.enqueue_webhook``)."""


class BudgetWatch:
    def __init__(
        self, redis: Redis, keys: KeySpace, settings: BudgetWarningsConfig, deliver: Deliver
    ) -> None:
        self._redis = redis
        self._k = keys
        self._settings = settings
        self._deliver = deliver
        self._announced: set[str] = set()
        """Crossings this process knows are marked: no SET NX for them every check."""

    async def check(self, now: datetime) -> list[Crossing]:
        """Announce what is newly crossed at ``now``; returns what this process announced."""
        thresholds = self._settings.thresholds_pct
        if not thresholds:
            return []
        tenants = [
            t for t in await TenantStore(self._redis, self._k).all_tenants() if budgets(t.quotas)
        ]
        if not tenants:
            self._announced.clear()
            return []
        periods = usage_periods(now)
        shards = [self._k.on(shard) for shard in self._k.shards]
        async with self._redis.pipeline(transaction=False) as pipe:
            for t in tenants:
                for period in (periods.day, periods.month):
                    for on in shards:  # each shard holds the usage of the jobs that ran on it
                        pipe.hgetall(on.tenant_usage(t.id, period))
            parts: list[dict[str, str]] = await pipe.execute()
        n = len(shards)
        hashes = [sum_fields(parts[i : i + n]) for i in range(0, len(parts), n)]
        current: list[tuple[TenantRecord, Crossing]] = []
        for i, tenant in enumerate(tenants):
            day, month = Usage.from_hash(hashes[2 * i]), Usage.from_hash(hashes[2 * i + 1])
            for c in crossed(
                tenant.id, tenant.quotas, day=day, month=month, thresholds_pct=thresholds, now=now
            ):
                current.append((tenant, c))
        fresh = newly_crossed([c for _t, c in current], self._announced)
        owners = {c.id: t for t, c in current}
        announced = [c for c in fresh if await self._announce(owners[c.id], c, now)]
        # what is crossed now is marked now (by this process or another); older ids are done
        self._announced = {c.id for _t, c in current}
        return announced

    async def _announce(self, tenant: TenantRecord, crossing: Crossing, now: datetime) -> bool:
        mark = self._k.budget_warned(crossing.id)
        if not await awaited(self._redis.set(mark, "1", nx=True, ex=mark_ttl_s(crossing, now))):
            return False  # another control process (or an earlier session) announced it
        url = tenant.budget_webhook_url or self._settings.webhook_url
        if url is not None:
            try:
                await self._deliver(url, EVENT, crossing.id, crossing.to_api())
            except Exception:
                await awaited(self._redis.delete(mark))  # the next check tries again
                raise
        count_budget_warning(crossing.period, crossing.threshold_pct)
        log.warning(
            "budget threshold crossed",
            tenant=crossing.tenant,
            period=crossing.period,
            period_id=crossing.period_id,
            measure=crossing.measure,
            threshold_pct=crossing.threshold_pct,
            used=round(crossing.used, 6),
            budget=crossing.budget,
            webhook=url is not None,
        )
        return True
