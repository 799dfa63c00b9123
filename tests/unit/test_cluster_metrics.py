"""The cluster series built from a snapshot, and the pure readings of what the scripts keep."""

from __future__ import annotations

import asyncio

from prometheus_client.core import Metric
from prometheus_client.registry import CollectorRegistry
from redis.exceptions import ConnectionError as RedisConnectionError

from anygate.broker.cluster_counters import (
    JobCounter,
    TokenKind,
    counter_field,
    decode_job_counts,
    decode_token_counts,
)
from anygate.broker.cluster_metrics import ClusterCollector, families, start_refresh
from anygate.broker.cluster_snapshot import (
    BatchLineState,
    BreakerGauge,
    ClusterSnapshot,
    batch_lines,
    breaker_gauge,
    budget_ratios,
    lane_depths,
)
from anygate.broker.keys import KeySpace
from anygate.config import AnygateConfig, Priority, TenantQuotas

CATALOGUE = {
    "anygate_jobs_submitted": ("counter", ["pool", "class", "model"]),
    "anygate_jobs_started": ("counter", ["pool", "model"]),
    "anygate_jobs_finished": ("counter", ["pool", "model", "outcome"]),
    "anygate_job_redeliveries": ("counter", ["pool"]),
    "anygate_dead_letters": ("gauge", ["pool"]),
    "anygate_queue_depth": ("gauge", ["pool", "class"]),
    "anygate_queue_oldest_age_seconds": ("gauge", ["pool", "class"]),
    "anygate_tokens": ("counter", ["model", "tenant", "kind"]),
    "anygate_cost_usd": ("counter", ["model", "tenant"]),
    "anygate_breaker_state": ("gauge", ["deployment", "state"]),
    "anygate_batch_lines": ("gauge", ["state"]),
    "anygate_budget_used_ratio": ("gauge", ["tenant", "period"]),
    "anygate_workers_alive": ("gauge", ["pool"]),
}
"""docs/metrics.md's cluster series (counters named without ``_total``, as prometheus_client
names a family)."""


def jobs_hash() -> dict[str, str]:
    return {
        counter_field(JobCounter.SUBMITTED, "openai", "standard", "gpt-4o-mini"): "5",
        counter_field(JobCounter.STARTED, "openai", "gpt-4o-mini"): "6",
        counter_field(JobCounter.FINISHED, "openai", "gpt-4o-mini", "succeeded"): "3",
        counter_field(JobCounter.FINISHED, "openai", "gpt-4o-mini", "failed"): "1",
        counter_field(JobCounter.REDELIVERED, "openai"): "2",
    }


def tokens_hash() -> dict[str, str]:
    return {
        counter_field(TokenKind.PROMPT, "gpt-4o-mini", "acme"): "100",
        counter_field(TokenKind.COMPLETION, "gpt-4o-mini", "acme"): "40",
        counter_field(TokenKind.PROMPT, "gpt-4o-mini", "globex"): "10",
        counter_field(TokenKind.COST, "gpt-4o-mini", "acme"): "1500",
        counter_field(TokenKind.COST, "gpt-4o-mini", "globex"): "2500000000",
    }


def sample_snapshot() -> ClusterSnapshot:
    return ClusterSnapshot(
        pools=("openai",),
        jobs=decode_job_counts(jobs_hash()),
        tokens=decode_token_counts(tokens_hash()),
        dead_letters={"openai": 1},
        queue_depth={("openai", p): n for p, n in zip(Priority, (0, 4, 2), strict=True)},
        oldest_age_s={("openai", p): a for p, a in zip(Priority, (0.0, 3.5, 9.0), strict=True)},
        breakers={"openai:gpt-4o-mini": BreakerGauge.COOLING},
        batch_lines=dict.fromkeys(BatchLineState, 1),
        budget_used={("acme", "day"): 0.25},
        workers_alive={"openai": 2},
    )


def by_name(found: list[Metric]) -> dict[str, Metric]:
    return {m.name: m for m in found}


def value(metric: Metric, **labels: str) -> float:
    matches = [s.value for s in metric.samples if s.labels == labels]
    assert len(matches) == 1, (metric.name, labels, metric.samples)
    return matches[0]


class TestCounterFields:
    def test_a_model_holding_the_separator_reads_back_whole(self) -> None:
        """Pool, class, tenant and outcome cannot hold ``|``; a model alias might."""
        raw = {
            counter_field(JobCounter.SUBMITTED, "p", "batch", "a|b"): "1",
            counter_field(JobCounter.STARTED, "p", "a|b"): "2",
            counter_field(JobCounter.FINISHED, "p", "a|b", "expired"): "3",
        }
        jobs = decode_job_counts(raw)
        assert jobs.submitted == {("p", "batch", "a|b"): 1}
        assert jobs.started == {("p", "a|b"): 2}
        assert jobs.finished == {("p", "a|b", "expired"): 3}
        tokens = decode_token_counts({counter_field(TokenKind.PROMPT, "a|b", "t"): "4"})
        assert tokens.tokens == {("a|b", "t", TokenKind.PROMPT): 4}

    def test_fields_this_version_cannot_read_are_left_out(self) -> None:
        jobs = decode_job_counts({"later|x": "1", "started|nomodel": "1", "submitted|p|c|m": "x"})
        assert jobs.submitted == jobs.started == jobs.finished == jobs.redelivered == {}


class TestFamilies:
    def test_every_catalogued_series_with_its_type_and_labels(self) -> None:
        found = by_name(families(sample_snapshot(), tenant_label=True))
        assert {
            n: (m.type, sorted({k for s in m.samples for k in s.labels})) for n, m in found.items()
        } == {n: (t, sorted(labels)) for n, (t, labels) in CATALOGUE.items()}

    def test_counters_carry_the_counts(self) -> None:
        found = by_name(families(sample_snapshot(), tenant_label=True))
        submitted = found["anygate_jobs_submitted"]
        assert submitted.samples[0].name == "anygate_jobs_submitted_total"
        assert value(submitted, pool="openai", **{"class": "standard"}, model="gpt-4o-mini") == 5
        finished = found["anygate_jobs_finished"]
        assert value(finished, pool="openai", model="gpt-4o-mini", outcome="failed") == 1
        assert value(found["anygate_job_redeliveries"], pool="openai") == 2

    def test_cost_is_counted_in_nano_usd_and_shown_in_usd(self) -> None:
        cost = by_name(families(sample_snapshot(), tenant_label=True))["anygate_cost_usd"]
        assert value(cost, model="gpt-4o-mini", tenant="acme") == 1.5e-6
        assert value(cost, model="gpt-4o-mini", tenant="globex") == 2.5

    def test_without_the_tenant_label_tokens_and_cost_sum_over_tenants(self) -> None:
        found = by_name(families(sample_snapshot(), tenant_label=False))
        tokens = found["anygate_tokens"]
        assert value(tokens, model="gpt-4o-mini", kind="prompt") == 110
        assert value(tokens, model="gpt-4o-mini", kind="completion") == 40
        assert value(found["anygate_cost_usd"], model="gpt-4o-mini") == 2.5 + 1.5e-6
        assert value(found["anygate_budget_used_ratio"], tenant="acme", period="day") == 0.25

    def test_the_breaker_shows_one_state_of_four(self) -> None:
        breaker = by_name(families(sample_snapshot(), tenant_label=True))["anygate_breaker_state"]
        shown = {s.labels["state"]: s.value for s in breaker.samples}
        assert shown == {"closed": 0, "open": 0, "half_open": 0, "cooling": 1}

    def test_queues_show_every_class(self) -> None:
        found = by_name(families(sample_snapshot(), tenant_label=True))
        depth = found["anygate_queue_depth"]
        assert value(depth, pool="openai", **{"class": "interactive"}) == 0
        assert value(depth, pool="openai", **{"class": "batch"}) == 2
        age = found["anygate_queue_oldest_age_seconds"]
        assert value(age, pool="openai", **{"class": "batch"}) == 9.0

    def test_an_empty_snapshot_has_every_family_and_no_sample(self) -> None:
        found = families(ClusterSnapshot(), tenant_label=True)
        assert {m.name for m in found} == set(CATALOGUE)
        assert all(not m.samples for m in found)


class TestCollector:
    def test_registers_its_names_and_shows_nothing_before_a_refresh(self) -> None:
        """collect() is synchronous and reads only the last snapshot: none yet, no samples."""
        registry = CollectorRegistry()
        collector = ClusterCollector(None, KeySpace("t"), AnygateConfig())  # type: ignore[arg-type]
        registry.register(collector)
        assert registry.get_sample_value("anygate_workers_alive", {"pool": "openai"}) is None
        collector.last = sample_snapshot()
        assert registry.get_sample_value("anygate_workers_alive", {"pool": "openai"}) == 2
        assert (
            registry.get_sample_value(
                "anygate_tokens_total", {"model": "gpt-4o-mini", "tenant": "acme", "kind": "prompt"}
            )
            == 100
        )


class FlakyCollector(ClusterCollector):
    """Redis is away for its first refresh."""

    def __init__(self) -> None:
        super().__init__(None, KeySpace("t"), AnygateConfig())  # type: ignore[arg-type]
        self.calls = 0

    async def refresh(self) -> ClusterSnapshot:
        self.calls += 1
        if self.calls == 1:
            raise RedisConnectionError("away")
        self.last = sample_snapshot()
        return self.last


async def test_the_refresh_loop_outlives_a_failed_read() -> None:
    """A Redis outage leaves the last snapshot in place; the next tick reads again."""
    collector = FlakyCollector()
    task = start_refresh(collector, interval_s=0.01)
    try:
        async with asyncio.timeout(5):
            while collector.last is None:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert collector.calls >= 2


class TestReadings:
    def test_breaker_states(self) -> None:
        now = 10_000
        assert breaker_gauge(None, None, None, now) is BreakerGauge.CLOSED
        assert breaker_gauge("closed", "0", "12000", now) is BreakerGauge.COOLING
        assert breaker_gauge("open", "15000", "0", now) is BreakerGauge.OPEN
        assert breaker_gauge("open", "9000", "0", now) is BreakerGauge.HALF_OPEN, "probe due"
        assert breaker_gauge("half", "0", "0", now) is BreakerGauge.HALF_OPEN
        assert breaker_gauge("closed", "0", "9000", now) is BreakerGauge.CLOSED

    def test_lane_depths_come_from_the_stats_hash(self) -> None:
        stats = {
            "queued": "9",
            "inflight": "2",
            "ewma_ms": "5",
            "q:standard:acme": "3",
            "q:standard:globex": "1",
            "q:batch:acme": "0",
            "q:nosuch:acme": "4",
        }
        depths = lane_depths(stats)
        assert depths[Priority.STANDARD] == {"acme": 3, "globex": 1}
        assert depths[Priority.BATCH] == depths[Priority.INTERACTIVE] == {}

    def test_budget_ratio_is_the_nearer_limit(self) -> None:
        quotas = TenantQuotas(daily_tokens=1000, daily_usd=2.0, monthly_usd=10.0)
        ratios = budget_ratios(quotas, ["100", "1.5"], ["5000", "2.5"])
        assert ratios == {"day": 0.75, "month": 0.25}
        assert budget_ratios(TenantQuotas(), ["1", "1"], ["1", "1"]) == {}
        assert budget_ratios(TenantQuotas(monthly_tokens=10), [None, None], [None, None]) == {
            "month": 0.0
        }

    def test_batch_lines_by_state(self) -> None:
        lines = batch_lines(
            [
                ["10", "6", None, "3", "2"],  # 4 not expanded, 3 in the broker, 2 done well, 1 not
                ["5", "2", "1", "5", "1"],  # wound down: nothing waits, everything ended
            ]
        )
        assert lines == {
            BatchLineState.QUEUED: 4,
            BatchLineState.RUNNING: 3,
            BatchLineState.COMPLETED: 3,
            BatchLineState.FAILED: 5,
        }
