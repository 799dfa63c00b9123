"""The arithmetic of docs/capacity.md's model (bench/capacity_model.py), on hand-checked figures."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load() -> ModuleType:
    """bench/ is not a package: its modules import each other as top-level modules."""
    spec = importlib.util.spec_from_file_location("capacity_model", BENCH / "capacity_model.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("capacity_model", module)
    spec.loader.exec_module(module)
    return module


model = _load()


def test_one_process_serves_1e6_over_cost_times_utilisation() -> None:
    assert model.rate_per_process(250, 0.6) == pytest.approx(2400)
    assert model.rate_per_process(1000, 1.0) == pytest.approx(1000)


@pytest.mark.parametrize(
    ("rate", "expected"),
    [(0, 1), (1, 1), (2400, 1), (2401, 2), (4800, 2), (7200, 3), (7201, 4)],
)
def test_processes_round_up_exactly_at_the_boundary(rate: float, expected: int) -> None:
    # 1e6 / 250 x 0.6 = 2,400 requests/s per process; 7,200 is exactly 3 (no float dust).
    assert model.processes_for(rate, 250, 0.6) == expected


def test_plan_at_three_loads() -> None:
    inputs = model.Inputs(redis_us=50, api_us=500, worker_us=300, upstream_latency_s=1.0)
    small, medium, large = model.plans(inputs)
    # Shard: 1e6/50 x 0.6 = 12,000/s; API: 1,200/s; worker CPU: 2,000/s; slots 1,000 each.
    assert (small.shards, small.api_processes, small.worker_processes) == (1, 1, 1)
    assert small.in_flight == 1000
    assert small.slots_per_worker == 1000
    assert (medium.shards, medium.api_processes, medium.worker_processes) == (1, 9, 10)
    assert medium.worker_bound == "slots"
    assert (large.shards, large.api_processes) == (9, 84)
    assert large.worker_processes == 100
    assert large.worker_bound == "slots"
    assert large.slots_per_worker == 1000
    assert large.shard_rate == pytest.approx(12_000)


def test_cpu_sets_the_workers_when_calls_are_short() -> None:
    inputs = model.Inputs(redis_us=50, api_us=500, worker_us=300, upstream_latency_s=0.05)
    p = model.plan(100_000, inputs)
    assert p.worker_processes == 50
    assert p.worker_bound == "cpu"
    assert p.in_flight == pytest.approx(5000)
    assert p.slots_per_worker == 100  # 5,000 calls over 50 processes


def test_zero_latency_still_needs_one_slot_per_worker() -> None:
    p = model.plan(10, model.Inputs(redis_us=1, api_us=1, worker_us=1, upstream_latency_s=0))
    assert (p.worker_processes, p.slots_per_worker, p.in_flight) == (1, 1, 0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("redis_us", 0),
        ("api_us", -1),
        ("worker_us", float("nan")),
        ("utilisation", 0),
        ("utilisation", 1.5),
        ("upstream_latency_s", -0.1),
        ("slots_per_worker", 0),
    ],
)
def test_bad_inputs_name_the_field(field: str, value: float) -> None:
    args = {"redis_us": 50.0, "api_us": 500.0, "worker_us": 300.0, field: value}
    with pytest.raises(ValueError, match=field):
        model.Inputs(**args)


def test_table_has_one_row_per_rate() -> None:
    rows = model.plans(model.Inputs(redis_us=50, api_us=500, worker_us=300))
    lines = model.table(rows).splitlines()
    assert len(lines) == 2 + 3
    assert lines[-1].startswith("| 100,000 | 9 | 84 | 100 | 1000 |")
