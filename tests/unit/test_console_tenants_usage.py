"""Usage rows shaped for the tenant page's tables and charts (api/console/tenants_usage)."""

from __future__ import annotations

from datetime import date

from anygate.api.console import tenants_usage as usage
from anygate.broker.admin_queries import UsageRow, days_between

DAYS = days_between(date(2026, 3, 1), date(2026, 3, 3))


def row(
    day: int, model: str, requests: int, tokens: int, cost: float, tenant: str = "t"
) -> UsageRow:
    return UsageRow(tenant, model, date(2026, 3, day), requests, tokens, 1, cost)


ROWS = [row(1, "b", 1, 9, 0.5), row(1, "a", 2, 19, 0.25), row(3, "a", 1, 4, 0.125)]


def test_per_day_fills_days_without_usage() -> None:
    days = usage.per_day(ROWS, DAYS)
    assert [d.key for d in days] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert [d.requests for d in days] == [3, 0, 1]
    assert [d.total_tokens for d in days] == [30, 0, 5]
    assert days[0].cost_usd == 0.75


def test_per_model_and_per_tenant_sum_their_rows() -> None:
    models = usage.per_model(ROWS)
    assert [(m.key, m.requests, m.total_tokens) for m in models] == [("a", 3, 25), ("b", 1, 10)]
    tenants = usage.per_tenant([*ROWS, row(2, "a", 5, 1, 0.0, tenant="u")])
    assert tenants["t"].requests == 4
    assert tenants["u"].requests == 5


def test_a_chart_has_a_series_per_model_and_a_point_per_day() -> None:
    charts = usage.usage_charts(ROWS, DAYS)
    tokens, cost = charts["tokens"], charts["cost"]
    assert tokens["x"] == [1772323200, 1772409600, 1772496000]
    assert [s["label"] for s in tokens["series"]] == ["a", "b"]
    assert tokens["series"][0]["values"] == [20, 0, 5]
    assert tokens["series"][1]["values"] == [10, 0, 0]
    assert cost["unit"] == "USD"
    assert cost["series"][0]["values"] == [0.25, 0, 0.125]


def test_rows_outside_the_days_are_not_charted() -> None:
    spec = usage.chart_spec("x", [row(9, "a", 1, 1, 1.0)], DAYS, lambda r: r.requests, "")
    assert spec["series"] == []
