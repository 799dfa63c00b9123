"""Why did a job fail, and what did its attempts go on? Pure functions over a job's record.

A job may fail only through a fault injected at the provider. A failure is charged to our own
infrastructure when its error code says so (an adapter crash, the poison-job guard, an open
breaker met by queued work, an exception name or Redis in the message) or when it ended outside
every upstream-fault window (plus ``MARGIN_S``: the provider timeout, a breaker's cool-down and
a little scheduling slack).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from tests.chaos.schedule import Window
from tests.chaos.settings import BREAKER_COOLDOWN_S, PROVIDER_TIMEOUT_S

MARGIN_S = PROVIDER_TIMEOUT_S + BREAKER_COOLDOWN_S + 3.0
INFRA_CODES = frozenset({"adapter_error", "max_attempts_exceeded"})
INFRA_TEXT = ("Redis", "TimeoutError", "ConnectionError", "ConnectionResetError", "BusyLoading")
UPSTREAM_CODES = frozenset(
    {
        "upstream_timeout",
        "upstream_connection_error",
        "incomplete_stream",
        "incomplete_response",
        "malformed_chunk",
        "malformed_response",
        "upstream_stream_error",
        "upstream_error",
    }
)
"""Codes the adapters give failures seen at the provider (``workers/adapters``)."""
OWN_OUTCOMES = frozenset({"lease_expired"})


def loads(raw: str | None) -> Any:
    return orjson.loads(raw) if raw else None


@dataclass(frozen=True, slots=True)
class Failure:
    job_id: str
    code: str
    upstream_status: int | None
    finished: float
    sync: bool
    verdict: str
    """``upstream: <fault>`` when an injected fault explains it, else why it is ours."""

    @property
    def ours(self) -> bool:
        return not self.verdict.startswith("upstream")


def classify_failure(job_id: str, fields: Mapping[str, str], windows: Sequence[Window]) -> Failure:
    error = loads(fields.get("error")) or {}
    code = str(error.get("code") or "")
    status = error.get("upstream_status")
    message = str(error.get("message") or "")
    finished = int(fields.get("finished_ms") or 0) / 1000
    sync = bool(fields.get("reply_to"))

    def verdict() -> str:
        if code in INFRA_CODES:
            return f"infrastructure code {code}"
        if code == "circuit_open" and not sync:
            return "queued job failed on an open breaker"
        if code not in UPSTREAM_CODES and any(t in message for t in INFRA_TEXT):
            return f"infrastructure text: {message[:80]}"
        if status is None and code not in UPSTREAM_CODES and code != "circuit_open":
            return f"not an upstream error ({code or 'no code'})"
        for w in windows:
            if w.fault.upstream and w.covers(finished, MARGIN_S):
                return f"upstream: {w.fault.value}"
        return "failed while the provider was healthy"

    return Failure(job_id, code, status, finished, sync, verdict())


def _upstream_error(entry: Mapping[str, Any]) -> bool:
    error = entry.get("error") or {}
    code = error.get("code")
    return code not in INFRA_CODES and (error.get("status") is not None or code in UPSTREAM_CODES)


def _own_fault(entry: Mapping[str, Any]) -> bool:
    return entry.get("outcome") in OWN_OUTCOMES or (
        bool(entry.get("error")) and not _upstream_error(entry)
    )


@dataclass(frozen=True, slots=True)
class StepSpend:
    step: int
    upstream_errors: int
    own_faults: int
    ended: str
    """The step's last outcome (retry, fall_back, fail, lease_expired, ...)."""


def step_spend(history: Sequence[Mapping[str, Any]]) -> list[StepSpend]:
    """Group attempt-history entries by the route step they were made on. The reclaim script's
    ``lease_expired`` entries carry no step: they belong to the step in force at the time."""
    steps: dict[int, list[Mapping[str, Any]]] = {}
    current = 0
    for entry in history:
        current = int(entry.get("step", current))
        steps.setdefault(current, []).append(entry)
        if entry.get("outcome") == "fall_back":
            current += 1
    return [
        StepSpend(
            step,
            sum(map(_upstream_error, entries)),
            sum(map(_own_fault, entries)),
            str(entries[-1].get("outcome")),
        )
        for step, entries in sorted(steps.items())
    ]


def own_fault_entries(history: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [e for e in history if _own_fault(e)]


def charged_as_upstream(history: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Attempts our own fault was charged for as if the provider had failed: the worker
    retried, fell back or failed the job over an error that is not the provider's (an adapter
    crash on a Redis timeout, say). A lost lease (``lease_expired``) is a redelivery, not this."""
    return [
        e for e in history if e.get("outcome") in {"retry", "fall_back", "fail"} and _own_fault(e)
    ]


def cut_short(history: Sequence[Mapping[str, Any]], per_deployment: int) -> list[StepSpend]:
    """Steps given up (fallen back from, or failed on) before ``per_deployment`` upstream errors
    while our own faults took attempts there: attempts our faults spent."""
    return [
        s
        for s in step_spend(history)
        if s.ended in {"fall_back", "fail"} and s.own_faults and s.upstream_errors < per_deployment
    ]
