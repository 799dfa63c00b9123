"""The soak's verdicts and charts: is each sampled series flat?

A series is **flat** when the median of its last three samples is within a tolerance of its first
steady sample (the sample after the warm-up: the first minute fills connection pools, loads Lua
scripts and reaches the retention's steady state, so it is never the baseline). Tolerances:

- memory (RSS of each process, Redis ``used_memory``) and Redis keys: **10 %**. A leak of one
  object per request at the soak's ~35 requests/s grows by far more than that in ten minutes,
  while allocator noise and a retention window's worth of records stay well inside it.
- latency p50: **25 %**; latency p99: **50 %** (one slow patch of a shared 2-core machine moves a
  minute's p99 by tens of percent without anything growing).
- errors: flat means none at all after the warm-up.

Beside the verdict each series carries its least-squares slope over the steady samples, in % of
the baseline per hour, so a slow creep that stays inside the tolerance over a short soak still
shows.
"""

from __future__ import annotations

import statistics
from typing import Any

TOLERANCE = {"memory": 0.10, "keys": 0.10, "p50": 0.25, "p99": 0.50}
BLOCKS = "▁▂▃▄▅▆▇█"
WARM_SAMPLES = 1
"""Samples dropped before the baseline: the first minute warms up (see the module docstring)."""


def tolerance_of(series: str) -> float | None:
    """The tolerance of a series by its name (``rss_mib:api``, ``latency_p99_ms:chat``...)."""
    if series.startswith(("rss_mib:", "redis_used_memory_mib")):
        return TOLERANCE["memory"]
    if series.startswith("redis_keys"):
        return TOLERANCE["keys"]
    if series.startswith("latency_p50_ms:"):
        return TOLERANCE["p50"]
    if series.startswith("latency_p99_ms:"):
        return TOLERANCE["p99"]
    return None  # counts (calls, errors): judged apart


def slope_pct_per_hour(values: list[float], minutes_per_sample: float) -> float:
    """Least-squares slope of ``values`` (one per sample) in % of the first value per hour."""
    if len(values) < 2 or values[0] == 0:
        return 0.0
    xs = list(range(len(values)))
    slope = statistics.linear_regression(xs, values).slope
    return slope / values[0] * 100 * 60 / minutes_per_sample


def verdict(series: str, values: list[float], minutes_per_sample: float) -> dict[str, Any]:
    """Flat or growing (or too short to say), with the figures it rests on."""
    steady = values[WARM_SAMPLES:] if len(values) > WARM_SAMPLES else values
    if series.startswith("errors:"):
        return {"flat": sum(steady) == 0, "after_warmup": sum(steady), "rule": "no errors"}
    tol = tolerance_of(series)
    if tol is None or not steady:
        return {"flat": None, "rule": "not judged"}
    base, last = steady[0], statistics.median(steady[-3:])
    change = (last - base) / base if base else 0.0
    return {
        "flat": abs(change) <= tol if len(steady) >= 2 else None,
        "baseline": round(base, 3),
        "last": round(last, 3),
        "change_pct": round(change * 100, 1),
        "tolerance_pct": tol * 100,
        "slope_pct_per_hour": round(slope_pct_per_hour(steady, minutes_per_sample), 1),
        "rule": f"median of the last 3 within {tol:.0%} of the first steady sample",
    }


def sparkline(values: list[float]) -> str:
    """One block per sample, scaled between the series' own minimum and maximum."""
    if not values:
        return ""
    low, high = min(values), max(values)
    span = high - low
    if span <= abs(high) * 1e-9:
        return BLOCKS[0] * len(values)
    return "".join(BLOCKS[round((v - low) / span * (len(BLOCKS) - 1))] for v in values)


def _verdict_word(v: dict[str, Any]) -> str:
    if v["flat"] is None:
        return "-"
    return "flat" if v["flat"] else "GROWS" if v.get("change_pct", 1) > 0 else "CHANGES"


def chart(series: dict[str, list[float]], verdicts: dict[str, dict[str, Any]]) -> str:
    """A text table: series, sparkline, first, last, min, max, change and verdict."""
    width = max((len(name) for name in series), default=10)
    header = f"{'series':<{width}}  {'chart':<{max(5, *(len(v) for v in series.values()))}}"
    rows = [
        f"{header}  {'first':>9} {'last':>9} {'min':>9} {'max':>9} {'change':>8}  verdict",
    ]
    for name, values in series.items():
        if not values:
            continue
        v = verdicts[name]
        change = f"{v['change_pct']:+.1f}%" if "change_pct" in v else ""
        spark = sparkline(values).ljust(len(header) - width - 2)
        rows.append(
            f"{name:<{width}}  {spark}  {values[0]:>9.2f} {values[-1]:>9.2f} "
            f"{min(values):>9.2f} {max(values):>9.2f} {change:>8}  {_verdict_word(v)}"
        )
    return "\n".join(rows)
