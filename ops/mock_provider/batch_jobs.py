"""The provider-neutral life of a mock batch job: where it stands at a given moment.

Pure and lazy: a job's fate is fixed when it is created (its delay, its faults, its line count),
so its status and how many lines have run are a function of `now` and, once cancelled, of the
moment of cancellation. Nothing runs in the background; whoever polls advances the job to where
it must be at that moment. The wires map these statuses to their own names (OpenAI uses them
as they are; Gemini reports `BATCH_STATE_*`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from anygate.ops.mock_provider.faults import parse_rule_list

Status = Literal[
    "validating",
    "in_progress",
    "finalizing",
    "completed",
    "failed",
    "expired",
    "cancelling",
    "cancelled",
]
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "expired", "cancelled"})

VALIDATE_SHARE = 0.1
"""Share of the delay a job spends validating before any line runs."""
FINALIZE_SHARE = 0.1
"""Share of the delay spent finalizing after the last line ran."""
CANCEL_SHARE = 0.1
"""Share of the delay a cancelling job takes to become cancelled."""

BatchFaultKind = Literal["fail", "expire", "late", "line_errors"]


@dataclass(frozen=True, slots=True)
class BatchFaults:
    """What goes wrong with one job, fixed at creation from the batch fault rules."""

    fail: bool = False
    expire_fraction: float | None = None
    """Share of the lines that run before the job expires; None: it does not expire."""
    late_s: float = 0.0
    """Extra seconds the job stays in progress beyond the usual delay."""
    line_error_every: int | None = None
    """Every Nth line (1-based) fails with `line_error_status`."""
    line_error_status: int = 500

    def line_error(self, index: int) -> int | None:
        """The error status for the line at 0-based `index`, or None if it succeeds."""
        every = self.line_error_every
        if every is not None and (index + 1) % every == 0:
            return self.line_error_status
        return None


@dataclass(frozen=True, slots=True)
class Timeline:
    """When each phase of a job begins, given its creation time, delay and faults."""

    created_at: float
    delay_s: float
    total: int
    faults: BatchFaults = BatchFaults()

    @property
    def in_progress_at(self) -> float:
        return self.created_at + self.delay_s * VALIDATE_SHARE

    @property
    def run_end(self) -> float:
        """When the last line has run (or, for an expiring job, when running stops)."""
        return self.created_at + self.delay_s * (1 - FINALIZE_SHARE) + self.faults.late_s

    @property
    def finished_at(self) -> float:
        return self.created_at + self.delay_s + self.faults.late_s

    @property
    def expire_cap(self) -> int:
        fraction = self.faults.expire_fraction
        return self.total if fraction is None else math.floor(self.total * fraction)

    def lines_done(self, at: float) -> int:
        """Lines run by `at`: linear across the in-progress window, capped for an expiring job."""
        if self.faults.fail or at < self.in_progress_at:
            return 0
        window = self.run_end - self.in_progress_at
        share = 1.0 if window <= 0 else min(1.0, (at - self.in_progress_at) / window)
        return min(self.expire_cap, math.floor(self.total * share + 1e-9))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A job as seen at one moment: its status, lines run and the transitions reached."""

    status: Status
    done: int
    events: dict[str, float] = field(default_factory=dict)
    """Transition times reached so far, keyed `in_progress`, `finalizing`, `completed`, ..."""

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


def snapshot(
    timeline: Timeline, now: float, *, invalid: bool = False, cancelled_at: float | None = None
) -> Snapshot:
    """Where the job stands at `now`.

    `invalid` (its input failed validation) and a `fail` fault end it as failed when validation
    ends. A cancel only counts if it came before the job finished; the lines run by then are
    kept.
    """
    if invalid or timeline.faults.fail:
        if now < timeline.in_progress_at:
            return Snapshot("validating", 0)
        return Snapshot("failed", 0, {"failed": timeline.in_progress_at})
    if cancelled_at is not None and cancelled_at < timeline.finished_at and now >= cancelled_at:
        return _cancelled(timeline, now, cancelled_at)
    return _running(timeline, now)


def _running(timeline: Timeline, now: float) -> Snapshot:
    events: dict[str, float] = {}
    if now < timeline.in_progress_at:
        return Snapshot("validating", 0)
    events["in_progress"] = timeline.in_progress_at
    done = timeline.lines_done(now)
    expiring = timeline.faults.expire_fraction is not None
    if now < timeline.run_end or (expiring and now < timeline.finished_at):
        return Snapshot("in_progress", done, events)
    if expiring:
        events["expired"] = timeline.finished_at
        return Snapshot("expired", timeline.expire_cap, events)
    events["finalizing"] = timeline.run_end
    if now < timeline.finished_at:
        return Snapshot("finalizing", timeline.total, events)
    events["completed"] = timeline.finished_at
    return Snapshot("completed", timeline.total, events)


def _cancelled(timeline: Timeline, now: float, cancelled_at: float) -> Snapshot:
    events: dict[str, float] = {}
    if cancelled_at >= timeline.in_progress_at:
        events["in_progress"] = timeline.in_progress_at
    done = timeline.lines_done(cancelled_at)
    events["cancelling"] = cancelled_at
    ends_at = cancelled_at + timeline.delay_s * CANCEL_SHARE
    if now < ends_at:
        return Snapshot("cancelling", done, events)
    events["cancelled"] = ends_at
    return Snapshot("cancelled", done, events)


class BatchFaultRule(BaseModel):
    """One rule as posted to `/_mock/batch_faults`; it shapes batches created after it.

    Each matching rule applies to the next new batch and spends one of its `times`; rules of
    different kinds combine (a batch can both run late and fail every 3rd line).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    fault: BatchFaultKind
    provider: Literal["openai", "gemini"] | None = None
    times: int | None = Field(default=None, ge=1)
    fraction: float = Field(default=0.5, ge=0, le=1)
    """`expire`: the share of lines that run before the batch expires."""
    late_s: float = Field(default=5.0, ge=0)
    """`late`: seconds the batch stays in progress beyond the usual delay."""
    every: int = Field(default=2, ge=1)
    """`line_errors`: every Nth line fails."""
    status: Literal[429, 500, 503] = 500
    """`line_errors`: the HTTP status each failed line reports."""

    def matches(self, provider: str) -> bool:
        return self.provider is None or self.provider == provider


_RULES = TypeAdapter(list[BatchFaultRule])


def parse_batch_rules(payload: Any) -> list[BatchFaultRule]:
    return parse_rule_list(_RULES, payload, "batch fault rule")


class BatchFaultBook:
    """The active batch fault rules; a lock keeps `times` honest across threads."""

    def __init__(self) -> None:
        self._rules: list[BatchFaultRule] = []
        self._lock = threading.Lock()

    def add(self, rules: Sequence[BatchFaultRule]) -> None:
        with self._lock:
            self._rules.extend(rules)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[BatchFaultRule]:
        with self._lock:
            return list(self._rules)

    def take(self, provider: str) -> BatchFaults:
        """The faults of a new batch: the first matching rule of each kind, each spending a use."""
        chosen: dict[str, BatchFaultRule] = {}
        with self._lock:
            kept: list[BatchFaultRule] = []
            for rule in self._rules:
                if rule.fault in chosen or not rule.matches(provider):
                    kept.append(rule)
                    continue
                chosen[rule.fault] = rule
                if rule.times is None:
                    kept.append(rule)
                elif rule.times > 1:
                    kept.append(rule.model_copy(update={"times": rule.times - 1}))
            self._rules = kept
        return _faults_of(chosen)


def _faults_of(chosen: dict[str, BatchFaultRule]) -> BatchFaults:
    expire, late, errors = chosen.get("expire"), chosen.get("late"), chosen.get("line_errors")
    return BatchFaults(
        fail="fail" in chosen,
        expire_fraction=expire.fraction if expire is not None else None,
        late_s=late.late_s if late is not None else 0.0,
        line_error_every=errors.every if errors is not None else None,
        line_error_status=errors.status if errors is not None else 500,
    )
