"""The Overview's figures as plain data (docs/console.md#overview): rates from two samples of the
cluster's job counters, and the rows of its tables. No I/O: ``overview_data`` reads Redis and
hands the replies here, so every figure is testable without a stack.

Rates come from ``metrics:jobs`` (``broker/cluster_counters.py``), the counters the scripts add to
in the same step as each state change and never reset: the difference between two samples taken
``span_s`` apart, per minute. A counter that went down (a flushed Redis) counts as zero.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from anygate.api.admin_deployments import BREAKER_NAMES, ConfiguredDeployment, summary_state
from anygate.broker.admin_queries import Lane, PoolCounts, WorkerEntry
from anygate.broker.cluster_counters import JobCounts
from anygate.broker.keys import CLASS_ORDER
from anygate.broker.script_calls.health import BreakerState, HealthPeek

FAILED_OUTCOMES = frozenset({"failed", "expired"})
"""Terminal outcomes counted as errors: a job that failed for good (its retries spent, or a
poison job) or expired before it ran. A cancelled job is the client's choice, not an error."""

WINDOW_S = 60.0
"""Rates are taken over (at most) the last minute of samples."""
MIN_SPAN_S = 1.0
"""Below this, two samples say nothing: the page shows "measuring" instead of a rate."""


@dataclass(frozen=True, slots=True)
class CounterSample:
    """The counters that make the Overview's rates, at one moment (seconds, Redis's clock)."""

    at_s: float
    submitted: dict[tuple[str, str], int] = field(default_factory=dict)
    """By (pool, class)."""
    started: dict[str, int] = field(default_factory=dict)
    """Attempts claimed, by pool."""
    finished: dict[str, int] = field(default_factory=dict)
    """Jobs that reached a terminal status, by pool."""
    failed: dict[tuple[str, str], int] = field(default_factory=dict)
    """Jobs that failed or expired, by (pool, model alias)."""


def sample_of(counts: JobCounts, at_s: float) -> CounterSample:
    """Sum the counters over what the Overview does not split by (models, outcomes)."""
    sample = CounterSample(at_s)
    for (pool, cls, _model), n in counts.submitted.items():
        sample.submitted[(pool, cls)] = sample.submitted.get((pool, cls), 0) + n
    for (pool, _model), n in counts.started.items():
        sample.started[pool] = sample.started.get(pool, 0) + n
    for (pool, model, outcome), n in counts.finished.items():
        sample.finished[pool] = sample.finished.get(pool, 0) + n
        if outcome in FAILED_OUTCOMES:
            sample.failed[(pool, model)] = sample.failed.get((pool, model), 0) + n
    return sample


@dataclass(frozen=True, slots=True)
class Rates:
    """Per minute, between two samples ``span_s`` apart."""

    span_s: float
    submitted: dict[tuple[str, str], float]
    started: dict[str, float]
    finished: dict[str, float]
    failed: dict[tuple[str, str], float]

    def failed_in_pool(self, pool: str) -> float:
        return sum(v for (p, _m), v in self.failed.items() if p == pool)


K = TypeVar("K")


def _per_min(old: Mapping[K, int], new: Mapping[K, int], span_s: float) -> dict[K, float]:
    return {k: max(0, n - old.get(k, 0)) * 60.0 / span_s for k, n in new.items()}


def rates_between(old: CounterSample, new: CounterSample) -> Rates | None:
    """None when the samples are too close together to say anything."""
    span = new.at_s - old.at_s
    if span < MIN_SPAN_S:
        return None
    return Rates(
        span_s=span,
        submitted=_per_min(old.submitted, new.submitted, span),
        started=_per_min(old.started, new.started, span),
        finished=_per_min(old.finished, new.finished, span),
        failed=_per_min(old.failed, new.failed, span),
    )


class SampleWindow:
    """The samples of the last ``WINDOW_S`` (kept per process, shared by every Overview): a
    rate is taken between the oldest and the newest, so a page opened now already shows one if
    another page or stream sampled within the minute."""

    def __init__(self, window_s: float = WINDOW_S) -> None:
        self._window_s = window_s
        self._samples: deque[CounterSample] = deque()

    def add(self, sample: CounterSample) -> Rates | None:
        """Keep ``sample`` and answer the rates up to it."""
        if self._samples and sample.at_s < self._samples[-1].at_s:
            self._samples.clear()  # the clock went back: start over
        self._samples.append(sample)
        while len(self._samples) > 2 and sample.at_s - self._samples[1].at_s >= self._window_s:
            self._samples.popleft()
        return rates_between(self._samples[0], sample)


# --- table rows -----------------------------------------------------------------------------


def _age_s(oldest_ms: int | None, now_ms: int) -> float | None:
    return None if oldest_ms is None else max(0.0, (now_ms - oldest_ms) / 1000)


@dataclass(frozen=True, slots=True)
class LaneRow:
    """A pool's priority class: its lanes (one per tenant) added up."""

    pool: str
    priority: str
    depth: int
    tenants: int
    oldest_age_s: float | None
    submitted_per_min: float | None


def lane_rows(
    pools: Sequence[str], lanes: Iterable[Lane], now_ms: int, rates: Rates | None
) -> list[LaneRow]:
    """Every class of every pool, in pool then class order, waiting jobs or not."""
    depth: dict[tuple[str, str], int] = {}
    tenants: dict[tuple[str, str], int] = {}
    oldest: dict[tuple[str, str], int] = {}
    for lane in lanes:
        key = (lane.name.pool, lane.name.priority.value)
        depth[key] = depth.get(key, 0) + lane.depth
        tenants[key] = tenants.get(key, 0) + 1
        if lane.oldest_ms is not None:
            oldest[key] = min(oldest.get(key, lane.oldest_ms), lane.oldest_ms)
    rows = []
    for pool in pools:
        for cls in CLASS_ORDER:
            key = (pool, cls.value)
            rows.append(
                LaneRow(
                    pool=pool,
                    priority=cls.value,
                    depth=depth.get(key, 0),
                    tenants=tenants.get(key, 0),
                    oldest_age_s=_age_s(oldest.get(key), now_ms),
                    submitted_per_min=None if rates is None else rates.submitted.get(key, 0.0),
                )
            )
    return rows


@dataclass(frozen=True, slots=True)
class PoolRow:
    pool: str
    counts: PoolCounts
    started_per_min: float | None
    finished_per_min: float | None
    failed_per_min: float | None

    @property
    def paused(self) -> bool:
        return self.counts.paused is not None

    @property
    def paused_by(self) -> str | None:
        by = self.counts.paused.get("by") if self.counts.paused else None
        return str(by) if by is not None else None


def pool_rows(
    pools: Sequence[str], counts: Mapping[str, PoolCounts], rates: Rates | None
) -> list[PoolRow]:
    return [
        PoolRow(
            pool=pool,
            counts=counts[pool],
            started_per_min=None if rates is None else rates.started.get(pool, 0.0),
            finished_per_min=None if rates is None else rates.finished.get(pool, 0.0),
            failed_per_min=None if rates is None else rates.failed_in_pool(pool),
        )
        for pool in pools
    ]


@dataclass(frozen=True, slots=True)
class WorkerRow:
    pool: str
    id: str
    heartbeat_age_s: float
    busy: int
    concurrency: int
    alive: bool


def worker_rows(
    pools: Sequence[str],
    registry: Mapping[str, Sequence[WorkerEntry]],
    now_ms: int,
    alive_within_ms: int,
) -> list[WorkerRow]:
    """Alive as ``GET /admin/workers`` says it: a heartbeat younger than three intervals."""
    return [
        WorkerRow(
            pool=pool,
            id=w.id,
            heartbeat_age_s=max(0.0, (now_ms - w.heartbeat_ms) / 1000),
            busy=w.in_flight,
            concurrency=w.concurrency,
            alive=now_ms - w.heartbeat_ms < alive_within_ms,
        )
        for pool in pools
        for w in registry.get(pool, ())
    ]


@dataclass(frozen=True, slots=True)
class DeploymentRow:
    id: str
    pool: str
    model: str
    aliases: tuple[str, ...]
    state: str
    """``summary_state``: ok, cooling_down, open, half_open or recovering."""
    breaker: str
    open_for_s: float | None
    cooling_for_s: float | None
    recent_failures: bool
    """A transient failure is recent (the breaker counts it)."""


def deployment_rows(
    found: Sequence[ConfiguredDeployment], peeks: Sequence[HealthPeek]
) -> list[DeploymentRow]:
    return [
        DeploymentRow(
            id=dep.id,
            pool=dep.provider,
            model=dep.model,
            aliases=dep.aliases,
            state=summary_state(peek),
            breaker=BREAKER_NAMES[peek.state],
            open_for_s=peek.open_ms / 1000 if peek.state is BreakerState.OPEN else None,
            cooling_for_s=peek.cool_ms / 1000 if peek.cool_ms > 0 else None,
            recent_failures=peek.dirty,
        )
        for dep, peek in zip(found, peeks, strict=True)
    ]


@dataclass(frozen=True, slots=True)
class ErrorRow:
    pool: str
    model: str
    per_min: float


def error_rows(rates: Rates | None) -> list[ErrorRow]:
    """Pools and model aliases with jobs failing now, most first."""
    if rates is None:
        return []
    rows = [ErrorRow(p, m, v) for (p, m), v in rates.failed.items() if v > 0]
    return sorted(rows, key=lambda r: (-r.per_min, r.pool, r.model))
