"""Which budget thresholds a tenant has crossed (docs/operations.md#budget-warnings): each
threshold of each budget once, named by its UTC period so that the next day or month announces
it again, with the clock as a parameter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from anygate.config import TenantQuotas
from anygate.workers.budget_policy import (
    MARK_MARGIN_S,
    Crossing,
    Usage,
    crossed,
    mark_ttl_s,
    newly_crossed,
)

NOW = datetime(2026, 12, 3, 11, 30, tzinfo=UTC)
THRESHOLDS = (50, 80, 100)


def at(quotas: TenantQuotas, day: Usage, month: Usage, now: datetime = NOW) -> list[Crossing]:
    return crossed("acme", quotas, day=day, month=month, thresholds_pct=THRESHOLDS, now=now)


def names(crossings: list[Crossing]) -> list[tuple[str, str, int]]:
    return [(c.period, c.measure, c.threshold_pct) for c in crossings]


def test_nothing_without_budgets_or_below_the_first_threshold() -> None:
    assert at(TenantQuotas(), Usage(10**9, 1e9), Usage(10**9, 1e9)) == []
    assert at(TenantQuotas(daily_usd=10), Usage(0, 4.99), Usage()) == []


def test_each_threshold_reached_counts_exactly_at_its_boundary() -> None:
    quotas = TenantQuotas(daily_usd=10)
    assert names(at(quotas, Usage(0, 5.0), Usage())) == [("day", "usd", 50)]
    assert names(at(quotas, Usage(0, 7.99), Usage())) == [("day", "usd", 50)]
    assert names(at(quotas, Usage(0, 8.0), Usage())) == [("day", "usd", 50), ("day", "usd", 80)]
    assert [c.threshold_pct for c in at(quotas, Usage(0, 25.0), Usage())] == [50, 80, 100]


def test_every_budget_is_measured_against_its_own_period() -> None:
    quotas = TenantQuotas(daily_tokens=1000, monthly_tokens=10_000, monthly_usd=100)
    found = at(quotas, day=Usage(900, 1.0), month=Usage(5_000, 80.0))
    assert sorted(names(found)) == sorted(
        [
            ("day", "tokens", 50),
            ("day", "tokens", 80),
            ("month", "tokens", 50),
            ("month", "usd", 50),
            ("month", "usd", 80),
        ]
    )


def test_the_period_names_the_crossing_so_a_new_period_announces_again() -> None:
    quotas = TenantQuotas(daily_usd=10, monthly_usd=100)
    usage = Usage(0, 60.0)
    today = {c.id for c in at(quotas, usage, usage)}
    tomorrow = {c.id for c in at(quotas, usage, usage, NOW + timedelta(days=1))}
    assert "bw_acme_20261203_usd_50" in today
    assert "bw_acme_20261204_usd_50" in tomorrow
    # the month's crossing is the same on both days: announced once in the month
    assert "bw_acme_202612_usd_50" in today & tomorrow
    next_month = {c.id for c in at(quotas, usage, usage, datetime(2027, 1, 1, tzinfo=UTC))}
    assert "bw_acme_202701_usd_50" in next_month
    assert not today & next_month


def test_a_period_ends_at_utc_midnight_whatever_the_clocks_zone() -> None:
    quotas = TenantQuotas(daily_usd=10)
    before = datetime(2026, 12, 3, 23, 59, 59, tzinfo=UTC)
    after = before + timedelta(seconds=1)
    assert at(quotas, Usage(0, 5), Usage(), before)[0].period_id == "20261203"
    assert at(quotas, Usage(0, 5), Usage(), after)[0].period_id == "20261204"
    east = before.astimezone(timezone(timedelta(hours=2)))  # already the 4th there
    assert east.day == 4
    assert at(quotas, Usage(0, 5), Usage(), east)[0].period_id == "20261203"


def test_newly_crossed_leaves_out_what_was_announced() -> None:
    found = at(TenantQuotas(daily_usd=10), Usage(0, 9), Usage())
    assert newly_crossed(found, set()) == found
    assert [c.threshold_pct for c in newly_crossed(found, {found[0].id})] == [80]
    assert newly_crossed(found, {c.id for c in found}) == []


def test_the_mark_outlives_its_period() -> None:
    day = at(TenantQuotas(daily_usd=10), Usage(0, 9), Usage())[0]
    assert day.resets_at == datetime(2026, 12, 4, tzinfo=UTC)
    assert mark_ttl_s(day, NOW) == 12.5 * 3600 + MARK_MARGIN_S
    month = at(TenantQuotas(monthly_usd=10), Usage(), Usage(0, 9))[0]
    assert month.resets_at == datetime(2027, 1, 1, tzinfo=UTC)


def test_the_webhook_payload() -> None:
    found = at(TenantQuotas(monthly_tokens=1000), Usage(), Usage(850, 0))
    assert found[-1].to_api() == {
        "object": "budget_warning",
        "id": "bw_acme_202612_tokens_80",
        "tenant": "acme",
        "period": "month",
        "period_start": "2026-12-01",
        "measure": "tokens",
        "threshold_pct": 80,
        "used": 850,
        "budget": 1000.0,
        "used_ratio": 0.85,
        "resets_at": "2027-01-01T00:00:00+00:00",
    }


def test_usage_from_a_hash_reads_the_totals_only() -> None:
    fields = {"tokens": "12", "cost_usd": "0.5", "gpt:prompt_tokens": "99", "requests": "3"}
    assert Usage.from_hash(fields) == Usage(12, 0.5)
    assert Usage.from_hash({}) == Usage(0, 0.0)
