"""bench/headline.py: every same-run target in one table and in ``summary``, from the parts'
own summaries (hand-made here), with a part not run shown as such rather than as a zero."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str) -> ModuleType:
    """bench/ is not a package: its modules import each other as top-level modules."""
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


_load("report")  # queue_peers imports it as a top-level module
_load("queue_peers")
headline = _load("headline")

PEERS = {
    "anygate": {
        "throughput_rps": 1800.0,
        "stream_rps": 700.0,
        "added_latency_p50_ms": 2.0,
        "added_latency_p99_ms": 3.0,
    },
    "portkey": {
        "throughput_rps": 600.0,
        "stream_rps": 500.0,
        "added_latency_p50_ms": 1.0,
        "added_latency_p99_ms": 6.0,
    },
}
QUEUE = {
    "figures": {
        "aof": {
            "anygate": {"drain_jobs_s": {"median": 9000.0}, "rt_p50_ms": {"median": 0.8}},
            "bullmq-c32": {"drain_jobs_s": {"median": 4500.0}, "rt_p50_ms": {"median": 1.6}},
        }
    },
    "ratios": {
        "aof": {
            "drain_vs_bullmq": {"of_medians": 2.0, "paired_median": 2.1},
            "round_trip_vs_bullmq": {"of_medians": 0.5, "paired_median": 0.45},
        }
    },
}
WAITERS = {"median": 42.0, "min": 30.0, "max": 60.0, "n": 3}
COST = {
    "summary": {"redis_cpu_us_per_job": 90.0, "floor_cpu_us_per_job": 10.0, "ratio_vs_floor": 9.0}
}


def test_every_target_has_its_key_value_and_verdict() -> None:
    rows = headline.rows(PEERS, QUEUE, WAITERS, COST)
    found = headline.summary(rows)
    assert list(found) == list(headline.KEYS)
    assert found == {
        "ratio_tput_vs_portkey": 3.0,
        "ratio_stream_vs_portkey": 1.4,
        "added_p50_vs_portkey": 2.0,
        "added_p99_vs_portkey": 0.5,
        "drain_vs_bullmq": 2.0,
        "round_trip_vs_bullmq": 0.5,
        "waiter_wake_p99_ms": 42.0,
        "redis_cpu_us_per_job": 90.0,
    }
    verdicts = {row.headline.key: row.headline.met(row.value) for row in rows}
    assert verdicts == {
        "ratio_tput_vs_portkey": True,  # >= 3, exactly at it
        "ratio_stream_vs_portkey": False,
        "added_p50_vs_portkey": False,
        "added_p99_vs_portkey": True,
        "drain_vs_bullmq": False,
        "round_trip_vs_bullmq": True,
        "waiter_wake_p99_ms": True,
        "redis_cpu_us_per_job": False,
    }


def test_the_table_shows_the_absolutes_beside_each_ratio() -> None:
    text = headline.table(headline.rows(PEERS, QUEUE, WAITERS, COST))
    lines = text.splitlines()
    assert len(lines) == 2 + len(headline.KEYS)
    tput = next(line for line in lines if "`ratio_tput_vs_portkey`" in line)
    assert "3.00 x" in tput
    assert "1,800 vs 600 req/s" in tput
    assert "| met |" in tput
    drain = next(line for line in lines if "`drain_vs_bullmq`" in line)
    assert "9,000 vs 4,500 jobs/s" in drain
    assert "per-rep median 2.10" in drain
    assert "MISSED" in drain
    cost = next(line for line in lines if "`redis_cpu_us_per_job`" in line)
    assert "90.0 µs" in cost
    assert "floor 10.0 µs (9.0x it)" in cost


@pytest.mark.parametrize(
    ("peers", "queue", "waiters", "cost", "missing"),
    [
        ({}, QUEUE, WAITERS, COST, "--peers"),
        (PEERS, {}, WAITERS, COST, "--queue-peers"),
        (PEERS, QUEUE, {"n": 0}, COST, "--waiters"),
        (PEERS, QUEUE, WAITERS, None, "--redis-cost"),
    ],
)
def test_a_part_not_run_is_named_not_zero(
    peers: dict[str, Any],
    queue: dict[str, Any],
    waiters: dict[str, Any],
    cost: dict[str, Any] | None,
    missing: str,
) -> None:
    rows = headline.rows(peers, queue, waiters, cost)
    absent = [row for row in rows if row.value is None]
    assert absent
    assert all(f"not run ({missing})" == row.basis for row in absent)
    assert all(row.headline.met(row.value) is None for row in absent)
    assert f"not run ({missing})" in headline.table(rows)


def test_failed_waiters_miss_the_target_whatever_the_survivors_p99() -> None:
    row = headline.rows(PEERS, QUEUE, WAITERS, COST, waiter_errors=1185)[6]
    assert row.value == 42.0
    assert row.met() is False
    assert "1,185 waiters failed" in row.basis
    assert headline.rows(PEERS, QUEUE, WAITERS, COST)[6].met() is True


def test_a_peer_without_a_figure_is_no_ratio() -> None:
    peers = {"anygate": PEERS["anygate"], "portkey": {"throughput_rps": 0.0}}
    rows = headline.peer_rows(peers)
    assert [row.value for row in rows] == [None, None, None, None]
    assert {row.basis for row in rows} == {"a side has no figure"}
