"""Which budget thresholds a tenant has crossed (docs/operations.md#budget-warnings): pure.

A tenant's daily and monthly budgets (``TenantQuotas.daily_tokens`` … ``monthly_usd``) are
compared with what ``finish-5.lua`` counted in its usage hashes for the current UTC day and
month. Each threshold of each budget is one ``Crossing``, named by its period (``20261203`` or
``202612``): the name is what makes it announced once per period (``budget_warnings.py`` sets
one Redis key per name with SET NX), and a new day or month is a new name, so it fires again.
The clock is a parameter, so a test can stand on either side of a period's end.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from anygate.broker.quotas import seconds_until_reset, usage_periods
from anygate.config import TenantQuotas

Period = Literal["day", "month"]
Measure = Literal["tokens", "usd"]

MARK_MARGIN_S = 86_400
"""How long a crossing's mark outlives its period: a day, so a control process whose clock runs
a little behind the others cannot announce it again just after the period ended."""


@dataclass(frozen=True, slots=True)
class Usage:
    """One usage hash's totals."""

    tokens: int = 0
    cost_usd: float = 0.0

    @classmethod
    def from_hash(cls, fields: dict[str, str]) -> Usage:
        return cls(int(fields.get("tokens") or 0), float(fields.get("cost_usd") or 0.0))

    def of(self, measure: Measure) -> float:
        return float(self.tokens) if measure == "tokens" else self.cost_usd


@dataclass(frozen=True, slots=True)
class Crossing:
    tenant: str
    period: Period
    period_id: str
    """``YYYYMMDD`` or ``YYYYMM``, UTC: the period this crossing belongs to."""
    measure: Measure
    threshold_pct: int
    used: float
    budget: float
    resets_at: datetime

    @property
    def id(self) -> str:
        """Unique per tenant, period, budget and threshold: the mark's and the webhook's id."""
        return f"bw_{self.tenant}_{self.period_id}_{self.measure}_{self.threshold_pct}"

    def to_api(self) -> dict[str, Any]:
        """The webhook's ``data`` (docs/api.md#budget-warnings)."""
        return {
            "object": "budget_warning",
            "id": self.id,
            "tenant": self.tenant,
            "period": self.period,
            "period_start": period_start(self.period, self.period_id),
            "measure": self.measure,
            "threshold_pct": self.threshold_pct,
            "used": round(self.used, 10),
            "budget": self.budget,
            "used_ratio": round(self.used / self.budget, 6),
            "resets_at": self.resets_at.isoformat(),
        }


def period_start(period: Period, period_id: str) -> str:
    if period == "day":
        return f"{period_id[:4]}-{period_id[4:6]}-{period_id[6:8]}"
    return f"{period_id[:4]}-{period_id[4:6]}-01"


def budgets(quotas: TenantQuotas) -> list[tuple[Period, Measure, float]]:
    """The budgets a tenant has: (period, measure, amount) for each one set."""
    candidates: tuple[tuple[Period, Measure, float | None], ...] = (
        ("day", "tokens", quotas.daily_tokens),
        ("day", "usd", quotas.daily_usd),
        ("month", "tokens", quotas.monthly_tokens),
        ("month", "usd", quotas.monthly_usd),
    )
    return [(p, m, float(amount)) for p, m, amount in candidates if amount is not None]


def crossed(
    tenant: str,
    quotas: TenantQuotas,
    *,
    day: Usage,
    month: Usage,
    thresholds_pct: Sequence[int],
    now: datetime,
) -> list[Crossing]:
    """Every threshold the tenant's usage has reached in the current day and month (``now``),
    lowest first; the caller announces those it has not announced yet."""
    periods = usage_periods(now)
    found: list[Crossing] = []
    for period, measure, budget in budgets(quotas):
        used = (day if period == "day" else month).of(measure)
        resets_at = (now + timedelta(seconds=seconds_until_reset(period, now))).astimezone(UTC)
        for pct in sorted(set(thresholds_pct)):
            if used >= budget * pct / 100:
                period_id = periods.day if period == "day" else periods.month
                found.append(
                    Crossing(tenant, period, period_id, measure, pct, used, budget, resets_at)
                )
    return found


def mark_ttl_s(crossing: Crossing, now: datetime) -> int:
    """How long the crossing's once-only mark lives: past its period's end by a margin."""
    return int((crossing.resets_at - now).total_seconds()) + MARK_MARGIN_S


def newly_crossed(crossings: Sequence[Crossing], announced: Collection[str]) -> list[Crossing]:
    """The crossings not announced yet, as far as this process knows (``announced``: ids it
    announced or saw marked); the Redis mark settles it between processes."""
    return [c for c in crossings if c.id not in announced]
