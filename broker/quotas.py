"""Tenant quotas (docs/queue-semantics.md#quotas) as the scripts receive them, and the calendar they
are counted in.

Limits that refuse work (max queued jobs, daily and monthly budgets) are checked by
``enqueue-2.lua`` in the same step that would queue the job, so two API processes cannot both
admit the last slot. Limits that make work wait (max in flight) are checked by ``claim-13.lua``.
Both receive the limits from config as short strings built here; usage is counted per UTC day
and month by ``finish-5.lua``, in the periods named by ``usage_periods``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from anygate.broker.errors import InsufficientQuotaError, QueueFullError
from anygate.broker.script_calls.enqueue import QueueFull, QuotaMeasure, QuotaPeriod, QuotaSpent
from anygate.broker.tenants import TenantRecord
from anygate.config import TenantConfig, TenantQuotas


@dataclass(frozen=True, slots=True)
class UsagePeriods:
    day: str
    """``YYYYMMDD``, UTC."""
    month: str
    """``YYYYMM``, UTC."""


def usage_periods(now: datetime) -> UsagePeriods:
    now = now.astimezone(UTC)
    return UsagePeriods(now.strftime("%Y%m%d"), now.strftime("%Y%m"))


def seconds_until_reset(period: str, now: datetime) -> float:
    """When a spent daily or monthly budget is fresh again: the next UTC midnight or month."""
    now = now.astimezone(UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    if period == "day":
        return (midnight - now).total_seconds()
    first = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    return (first - now).total_seconds()


def submit_limits(quotas: TenantQuotas, now: datetime) -> str:
    """``enqueue-2.lua``'s submit limits (a job's 9th argument): empty when nothing can refuse
    the tenant's jobs."""
    if not quotas.limits_submit:
        return ""
    periods = usage_periods(now)

    def part(value: float | None) -> str:
        return "" if value is None else repr(value)

    return "|".join(
        [
            part(quotas.max_queued),
            part(quotas.daily_tokens),
            part(quotas.monthly_tokens),
            part(quotas.daily_usd),
            part(quotas.monthly_usd),
            periods.day,
            periods.month,
        ]
    )


def in_flight_caps(
    tenants: Iterable[TenantConfig | TenantRecord], elsewhere: Mapping[str, int] | None = None
) -> str:
    """``claim-13.lua``'s ARGV 10: ``tenant=cap`` for each tenant with an in-flight cap, less
    its running jobs on other shards (``elsewhere``; ``shard_quotas.py``)."""
    held = elsewhere or {}
    return ",".join(
        f"{t.id}={max(0, t.quotas.max_in_flight - held.get(t.id, 0))}"
        for t in tenants
        if t.quotas.max_in_flight is not None
    )


def refusal(refused: QueueFull | QuotaSpent, tenant: str, now: datetime) -> Exception:
    """The error for an ``enqueue-2.lua`` refusal: ``queue_full`` or ``insufficient_quota``."""
    if isinstance(refused, QueueFull):
        mean_ms = refused.mean_service_ms or 1000.0
        return QueueFullError(
            f"tenant {tenant!r} has {refused.queued} jobs queued, its limit (max_queued); retry "
            "when some have started",
            retry_after=max(1.0, math.ceil(mean_ms / 1000)),
        )
    period, what = refused.period, refused.measure
    spent = "token" if what is QuotaMeasure.TOKENS else "spending (USD)"
    daily = period is QuotaPeriod.DAY
    return InsufficientQuotaError(
        f"You exceeded your current quota: tenant {tenant!r} has used its {period}ly {spent} "
        f"budget ({'daily' if daily else 'monthly'}_{what}). It renews at the start "
        f"of the next UTC {period}.",
        retry_after=math.ceil(seconds_until_reset(period, now)),
    )
