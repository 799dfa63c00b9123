"""Usage rows (``AdminQueries.usage``, what ``/admin/usage`` serves) shaped for a tenant's page:
per-day and per-model totals for the tables and uPlot chart specs for console.js
(docs/console.md#tenants). Pure: rows in, figures out."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from anygate.broker.admin_queries import UsageRow


@dataclass(frozen=True, slots=True)
class Totals:
    """Requests, tokens and cost summed over some rows; ``key`` is a day or a model."""

    key: str
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def plus(self, row: UsageRow) -> Totals:
        return Totals(
            self.key,
            self.requests + row.requests,
            self.prompt_tokens + row.prompt_tokens,
            self.completion_tokens + row.completion_tokens,
            self.cost_usd + row.cost_usd,
        )


def _summed(
    rows: Iterable[UsageRow], keys: Sequence[str], key: Callable[[UsageRow], str]
) -> list[Totals]:
    found = {k: Totals(k) for k in keys}
    for row in rows:
        k = key(row)
        found[k] = found.get(k, Totals(k)).plus(row)
    return list(found.values())


def per_day(rows: Iterable[UsageRow], days: Sequence[date]) -> list[Totals]:
    """One entry per day of the range, oldest first; a day without usage is all zeros."""
    return _summed(rows, [d.isoformat() for d in days], lambda r: r.day.isoformat())


def per_model(rows: Iterable[UsageRow]) -> list[Totals]:
    """One entry per model that had usage in the range, by name."""
    return sorted(_summed(rows, [], lambda r: r.model), key=lambda t: t.key)


def per_tenant(rows: Iterable[UsageRow]) -> dict[str, Totals]:
    """Totals by tenant (the list page's "today" columns)."""
    return {t.key: t for t in _summed(rows, [], lambda r: r.tenant)}


def day_seconds(day: date) -> int:
    """The day's start (UTC midnight) in Unix seconds: uPlot's time axis."""
    return int(datetime.combine(day, time(), tzinfo=UTC).timestamp())


def chart_spec(
    title: str,
    rows: Sequence[UsageRow],
    days: Sequence[date],
    value: Callable[[UsageRow], float],
    unit: str,
) -> dict[str, Any]:
    """A console.js chart: one series per model, one point per day (0 on a day without use)."""
    index = {d: n for n, d in enumerate(days)}
    series: dict[str, list[float]] = {}
    for row in rows:
        if row.day in index:
            values = series.setdefault(row.model, [0.0] * len(days))
            values[index[row.day]] += value(row)
    return {
        "title": title,
        "x": [day_seconds(d) for d in days],
        "series": [
            {"label": model, "values": [round(v, 6) for v in values]}
            for model, values in sorted(series.items())
        ],
        "unit": unit,
    }


def usage_charts(rows: Sequence[UsageRow], days: Sequence[date]) -> dict[str, dict[str, Any]]:
    """The tenant page's two charts: tokens and cost per day and model."""
    return {
        "tokens": chart_spec(
            "Tokens per day", rows, days, lambda r: r.prompt_tokens + r.completion_tokens, "tokens"
        ),
        "cost": chart_spec("Cost per day", rows, days, lambda r: r.cost_usd, "USD"),
    }
