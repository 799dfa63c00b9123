"""The calendar and the argument strings of tenant quotas (broker/quotas.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from anygate.broker.errors import InsufficientQuotaError, QueueFullError
from anygate.broker.quotas import (
    in_flight_caps,
    refusal,
    seconds_until_reset,
    submit_limits,
    usage_periods,
)
from anygate.broker.script_calls.enqueue import QueueFull, QuotaMeasure, QuotaPeriod, QuotaSpent
from anygate.config import TenantConfig, TenantQuotas


def test_periods_are_utc_days_and_months() -> None:
    late_evening_in_new_york = datetime(2026, 11, 30, 22, 0, tzinfo=timezone(timedelta(hours=-5)))
    periods = usage_periods(late_evening_in_new_york)
    assert (periods.day, periods.month) == ("20261201", "202612")


@pytest.mark.parametrize(
    ("now", "period", "expected_s"),
    [
        (datetime(2026, 11, 23, 23, 59, 30, tzinfo=UTC), "day", 30),
        (datetime(2026, 11, 30, 23, 0, tzinfo=UTC), "month", 3600),
        (datetime(2026, 12, 31, 23, 0, tzinfo=UTC), "month", 3600),  # into January
        (datetime(2026, 12, 31, 23, 0, tzinfo=UTC), "day", 3600),
    ],
)
def test_a_budget_renews_at_the_next_utc_period(
    now: datetime, period: str, expected_s: float
) -> None:
    assert seconds_until_reset(period, now) == expected_s


def test_submit_limits_are_empty_without_limits_and_positional_with_them() -> None:
    now = datetime(2026, 11, 23, tzinfo=UTC)
    assert submit_limits(TenantQuotas(max_in_flight=3, rpm=10), now) == ""
    assert submit_limits(TenantQuotas(max_queued=5, monthly_usd=2.5), now) == (
        "5||||2.5|20261123|202611"
    )


def test_caps_name_only_capped_tenants() -> None:
    tenants = [
        TenantConfig(id="a", quotas=TenantQuotas(max_in_flight=2)),
        TenantConfig(id="b"),
        TenantConfig(id="c", quotas=TenantQuotas(max_in_flight=7)),
    ]
    assert in_flight_caps(tenants) == "a=2,c=7"


def test_refusals_become_typed_429s() -> None:
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    full = refusal(QueueFull(queued=40, mean_service_ms=2500.0), "acme", now)
    assert isinstance(full, QueueFullError)
    assert full.retry_after == 3
    assert "has 40 jobs queued" in full.message
    spent = refusal(QuotaSpent(QuotaPeriod.DAY, QuotaMeasure.USD), "acme", now)
    assert isinstance(spent, InsufficientQuotaError)
    assert spent.retry_after == 12 * 3600
    assert "daily_usd" in spent.message
