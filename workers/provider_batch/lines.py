"""What one job is to a provider batch, and what comes back for it: shared by both formats.

A line comes back in one of three ways. ``DONE``: the provider answered it, and the job ends with
that answer. ``FAILED``: the provider refused it for a reason another try would not change (a
400), and the job fails with the provider's error. ``NOT_RUN``: the line expired, was cancelled,
met a transient error (429, 5xx) or is missing from the results; the job still has time before
its deadline, so it is finished with a live call, which is where retries and fallbacks live.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from anygate.broker.errors import UpstreamError, UpstreamRejectedError
from anygate.workers.adapters.base import CallOutcome


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """One job as a provider batch line."""

    job_id: str
    endpoint: str
    """The job's OpenAI path (``/v1/chat/completions``, ``/v1/embeddings``)."""
    body: bytes
    """The job's OpenAI-format request body."""
    upstream_model: str


class LineState(enum.StrEnum):
    DONE = "done"
    FAILED = "failed"
    NOT_RUN = "not_run"


@dataclass(frozen=True, slots=True)
class LineResult:
    job_id: str
    state: LineState
    outcome: CallOutcome | None = None
    """Set when ``DONE``."""
    error: UpstreamError | None = None
    """Set when ``FAILED``; the provider's reason when ``NOT_RUN`` (for the job's history)."""


@dataclass
class ReadBack:
    results: dict[str, LineResult] = field(default_factory=dict)
    strays: int = 0
    """Lines that named no job of the batch, a job already answered, or were not JSON."""


def done(job_id: str, result: dict[str, Any]) -> LineResult:
    usage = result.get("usage")
    return LineResult(job_id, LineState.DONE, CallOutcome(result, usage if usage else None))


def refused(job_id: str, error: UpstreamError) -> LineResult:
    """A provider's error for one line: final only when another try cannot change it."""
    state = LineState.FAILED if isinstance(error, UpstreamRejectedError) else LineState.NOT_RUN
    return LineResult(job_id, state, error=error)


def not_run(job_id: str, error: UpstreamError | None = None) -> LineResult:
    return LineResult(job_id, LineState.NOT_RUN, error=error)


def complete(results: dict[str, LineResult], job_ids: list[str]) -> dict[str, LineResult]:
    """Every job of the batch has a result: a line the provider's files do not mention was
    not run."""
    return {job_id: results.get(job_id) or not_run(job_id) for job_id in job_ids}


def result_lines(data: bytes) -> Iterator[dict[str, Any]]:
    """A results file's non-blank lines, each a JSON object, or ``{}`` where a line is not one:
    a stray the reader counts, never a failed read."""
    for raw in data.splitlines():
        if raw.strip():
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError:
                parsed = None
            yield parsed if isinstance(parsed, dict) else {}
