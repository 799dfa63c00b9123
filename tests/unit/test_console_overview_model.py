"""The Overview's figures from plain data: counter samples into rates, and the table rows."""

from __future__ import annotations

import pytest

from anygate.api.admin_deployments import ConfiguredDeployment
from anygate.api.console.overview_model import (
    CounterSample,
    SampleWindow,
    deployment_rows,
    error_rows,
    lane_rows,
    pool_rows,
    rates_between,
    sample_of,
    worker_rows,
)
from anygate.broker.admin_queries import Lane, LaneName, PoolCounts, WorkerEntry
from anygate.broker.cluster_counters import decode_job_counts
from anygate.broker.script_calls.health import BreakerState, HealthPeek
from anygate.config import Priority


def counts(**fields: int) -> dict[str, str]:
    return {name.replace("__", "|"): str(n) for name, n in fields.items()}


def test_a_sample_sums_over_models_and_counts_failed_and_expired_as_errors() -> None:
    raw = {
        "submitted|openai|standard|gpt-4o": "5",
        "submitted|openai|standard|gpt:4o:mini": "3",
        "started|openai|gpt-4o": "9",
        "finished|openai|gpt-4o|succeeded": "6",
        "finished|openai|gpt-4o|failed": "2",
        "finished|openai|gpt:4o:mini|expired": "1",
        "finished|openai|gpt-4o|cancelled": "4",
    }
    sample = sample_of(decode_job_counts(raw), 100.0)
    assert sample.submitted == {("openai", "standard"): 8}
    assert sample.started == {"openai": 9}
    assert sample.finished == {"openai": 13}
    assert sample.failed == {("openai", "gpt-4o"): 2, ("openai", "gpt:4o:mini"): 1}


def test_rates_are_per_minute_and_a_counter_that_went_down_counts_zero() -> None:
    old = CounterSample(0.0, started={"a": 10, "b": 50}, failed={("a", "m"): 1})
    new = CounterSample(30.0, started={"a": 25, "b": 40, "c": 3}, failed={("a", "m"): 4})
    rates = rates_between(old, new)
    assert rates is not None
    assert rates.span_s == 30.0
    assert rates.started == {"a": 30.0, "b": 0.0, "c": 6.0}
    assert rates.failed_in_pool("a") == 6.0
    assert rates.failed_in_pool("b") == 0.0


def test_samples_too_close_together_give_no_rate() -> None:
    assert rates_between(CounterSample(10.0), CounterSample(10.5)) is None


def test_the_window_measures_from_its_oldest_sample_within_the_minute() -> None:
    window = SampleWindow(window_s=60.0)
    assert window.add(CounterSample(0.0, started={"p": 0})) is None
    first = window.add(CounterSample(10.0, started={"p": 20}))
    assert first is not None
    assert first.started["p"] == pytest.approx(120.0)
    for t in range(20, 130, 10):
        rates = window.add(CounterSample(float(t), started={"p": 2 * t}))
    assert rates is not None
    assert 50.0 <= rates.span_s <= 70.0  # old samples dropped: the rate is of the last minute
    assert rates.started["p"] == pytest.approx(120.0)


def test_the_window_starts_over_when_the_clock_goes_back() -> None:
    window = SampleWindow()
    window.add(CounterSample(100.0, started={"p": 0}))
    assert window.add(CounterSample(50.0, started={"p": 9})) is None


def lane(pool: str, cls: Priority, tenant: str, depth: int, oldest_ms: int | None) -> Lane:
    return Lane(LaneName(pool, cls, tenant), depth, oldest_ms)


def test_lane_rows_add_tenants_up_per_class_and_list_empty_classes_too() -> None:
    lanes = [
        lane("openai", Priority.STANDARD, "t1", 3, 90_000),
        lane("openai", Priority.STANDARD, "t2", 2, 40_000),
        lane("openai", Priority.BATCH, "t1", 1, None),
    ]
    rates = rates_between(
        CounterSample(0.0), CounterSample(60.0, submitted={("openai", "standard"): 7})
    )
    rows = lane_rows(["gemini", "openai"], lanes, 100_000, rates)
    assert [(r.pool, r.priority) for r in rows] == [
        (p, c) for p in ("gemini", "openai") for c in ("interactive", "standard", "batch")
    ]
    standard = rows[4]
    assert (standard.depth, standard.tenants, standard.oldest_age_s) == (5, 2, 60.0)
    assert standard.submitted_per_min == 7.0
    assert rows[5].depth == 1
    assert rows[5].oldest_age_s is None
    assert rows[0].depth == 0
    assert rows[0].submitted_per_min == 0.0
    assert lane_rows(["openai"], lanes, 100_000, None)[1].submitted_per_min is None


def test_pool_rows_carry_counts_pause_and_rates() -> None:
    paused = PoolCounts(4, 1, 0, 0, 2, {"at": 1.0, "by": "ops-key"})
    running = PoolCounts(0, 0, 0, 0, 0, None)
    rates = rates_between(
        CounterSample(0.0),
        CounterSample(
            30.0, started={"a": 1}, finished={"a": 2}, failed={("a", "m1"): 1, ("a", "m2"): 1}
        ),
    )
    a, b = pool_rows(["a", "b"], {"a": paused, "b": running}, rates)
    assert a.paused
    assert a.paused_by == "ops-key"
    assert a.counts.queued == 4
    assert (a.started_per_min, a.finished_per_min, a.failed_per_min) == (2.0, 4.0, 4.0)
    assert not b.paused
    assert b.paused_by is None
    assert b.failed_per_min == 0.0
    assert pool_rows(["b"], {"b": running}, None)[0].started_per_min is None


def test_worker_rows_age_and_aliveness() -> None:
    registry = {"p": [WorkerEntry("w1", 95_000, 8, 3), WorkerEntry("w2", 80_000, 4, 0)]}
    w1, w2 = worker_rows(["p", "q"], registry, now_ms=100_000, alive_within_ms=6_000)
    assert (w1.heartbeat_age_s, w1.busy, w1.concurrency, w1.alive) == (5.0, 3, 8, True)
    assert (w2.heartbeat_age_s, w2.alive) == (20.0, False)


def test_deployment_rows_name_breaker_and_cool_down() -> None:
    deps = [
        ConfiguredDeployment("openai:a", "openai", "a", None, ("fast",)),
        ConfiguredDeployment("openai:b", "openai", "b", None, ("slow",)),
    ]
    peeks = [
        HealthPeek(BreakerState.OPEN, 12_000, 0, True, False),
        HealthPeek(BreakerState.CLOSED, 0, 3_000, False, False),
    ]
    opened, cooling = deployment_rows(deps, peeks)
    assert (opened.state, opened.breaker, opened.open_for_s) == ("open", "open", 12.0)
    assert opened.recent_failures is True
    assert (cooling.state, cooling.breaker, cooling.cooling_for_s) == (
        "cooling_down",
        "closed",
        3.0,
    )
    assert cooling.open_for_s is None


def test_error_rows_list_failing_models_most_first() -> None:
    rates = rates_between(
        CounterSample(0.0, failed={("a", "x"): 5}),
        CounterSample(60.0, failed={("a", "x"): 5, ("a", "y"): 2, ("b", "z"): 6}),
    )
    assert [(e.pool, e.model, e.per_min) for e in error_rows(rates)] == [
        ("b", "z", 6.0),
        ("a", "y", 2.0),
    ]
    assert error_rows(None) == []
