"""The soak's verdicts and charts (bench/soak_report.py), on hand-made series."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load() -> ModuleType:
    """bench/ is not a package: its modules import each other as top-level modules."""
    spec = importlib.util.spec_from_file_location("soak_report", BENCH / "soak_report.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("soak_report", module)
    spec.loader.exec_module(module)
    return module


report = _load()


def test_the_warm_up_sample_is_not_the_baseline() -> None:
    # the first minute starts low (pools, scripts, retention not yet full), then it is flat
    v = report.verdict("rss_mib:api", [40.0, 100.0, 104.0, 101.0, 103.0], 1.0)
    assert v["flat"] is True
    assert v["baseline"] == 100.0
    assert v["last"] == 103.0  # median of the last three
    assert v["change_pct"] == 3.0


def test_memory_growing_past_ten_percent_is_not_flat() -> None:
    v = report.verdict("redis_used_memory_mib", [5.0, 10.0, 10.5, 11.0, 11.5, 12.0], 1.0)
    assert v["flat"] is False
    assert v["change_pct"] == pytest.approx(15.0)
    # 0.5 MiB a minute on a 10 MiB baseline: 300 % an hour
    assert v["slope_pct_per_hour"] == pytest.approx(300.0)


def test_latency_tolerances_are_wider_than_memory_ones() -> None:
    values = [9.0, 10.0, 13.0, 12.0, 14.0]  # +30 %
    assert report.verdict("latency_p50_ms:chat", values, 1.0)["flat"] is False
    assert report.verdict("latency_p99_ms:chat", values, 1.0)["flat"] is True
    assert report.verdict("redis_keys", values, 1.0)["flat"] is False


def test_errors_after_the_warm_up_are_never_flat() -> None:
    assert report.verdict("errors:job", [3, 0, 0], 1.0)["flat"] is True
    assert report.verdict("errors:job", [0, 0, 1], 1.0)["flat"] is False


def test_a_single_steady_sample_cannot_be_judged() -> None:
    assert report.verdict("rss_mib:api", [50.0, 60.0], 1.0)["flat"] is None


def test_sparkline_scales_between_the_series_extremes() -> None:
    assert report.sparkline([1.0, 2.0, 3.0]) == "▁▅█"
    assert report.sparkline([7.0, 7.0]) == "▁▁"
    assert report.sparkline([]) == ""


def test_chart_has_a_row_per_series_with_its_verdict() -> None:
    series = {"rss_mib:api": [50.0, 60.0, 61.0, 60.0], "redis_keys": [10.0, 20.0, 30.0, 40.0]}
    verdicts = {name: report.verdict(name, v, 1.0) for name, v in series.items()}
    rows = report.chart(series, verdicts).splitlines()
    assert len(rows) == 3
    assert rows[1].startswith("rss_mib:api")
    assert rows[1].endswith("flat")
    assert rows[2].startswith("redis_keys")
    assert rows[2].endswith("GROWS")
