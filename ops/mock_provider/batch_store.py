"""What the mock keeps for batch mode: uploaded and generated files, jobs and their results.

Lines run lazily: `advance` brings a job to where its timeline says it must be at `now`, running
(and metering in the request log) exactly the lines that became due since the last poll. Each
line is answered by the wire's own reply generator, so a batched answer equals a live one.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from anygate.ops.mock_provider.batch_jobs import BatchFaultBook, BatchFaults, Snapshot, Timeline
from anygate.ops.mock_provider.batch_jobs import snapshot as snapshot_at
from anygate.ops.mock_provider.request_log import RequestLog
from anygate.ops.mock_provider.settings import MockSettings


@dataclass(slots=True)
class StoredFile:
    """An uploaded or generated file; `provider` keeps OpenAI's and Gemini's files apart."""

    id: str
    provider: str
    filename: str
    purpose: str
    data: bytes
    created_at: float
    mime_type: str = "application/jsonl"
    generated: bool = False


@dataclass(frozen=True, slots=True)
class LineRequest:
    """One request of a batch: its caller's key (custom_id or metadata key) and its body."""

    key: Any
    model: str
    path: str
    body: Any


@dataclass(frozen=True, slots=True)
class LineResult:
    """A line's answer: the HTTP status and body a live call would have got, and its usage."""

    status: int
    body: dict[str, Any]
    request_id: str
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def tokens(self) -> int:
        """What the line bills: its reported usage; 0 for an error, as a live call would."""
        return self.prompt_tokens + self.completion_tokens


LineRunner = Callable[[LineRequest, int, BatchFaults, MockSettings], LineResult]
"""Answers the line at the given 0-based index, honouring the job's per-line faults."""


@dataclass(slots=True)
class Job:
    """One batch job; `details` holds what only its wire needs (endpoint, metadata, names)."""

    id: str
    provider: str
    timeline: Timeline
    lines: list[LineRequest]
    runner: LineRunner
    details: dict[str, Any] = field(default_factory=dict)
    invalid: list[dict[str, Any]] = field(default_factory=list)
    """Validation errors of the input; a job with any fails when validation ends."""
    cancelled_at: float | None = None
    results: list[LineResult] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    """Ids of the files written when the job ended, by role (`output`, `error`)."""
    finished: bool = False


def new_id(prefix: str, size: int = 12) -> str:
    return f"{prefix}{os.urandom(size).hex()}"


class BatchBook:
    """All files and jobs of one mock; one lock, since lines run inside request handling."""

    def __init__(self) -> None:
        self.files: dict[str, StoredFile] = {}
        self.jobs: dict[str, Job] = {}
        self.faults = BatchFaultBook()
        self.uploads: dict[str, Any] = {}
        """Gemini resumable upload sessions between `start` and `finalize`."""
        self.lock = threading.RLock()

    def add_file(self, stored: StoredFile) -> StoredFile:
        with self.lock:
            self.files[stored.id] = stored
        return stored

    def add_job(self, job: Job) -> Job:
        with self.lock:
            self.jobs[job.id] = job
        return job

    def jobs_of(self, provider: str) -> list[Job]:
        """Newest first, as both providers list them."""
        with self.lock:
            return [job for job in reversed(self.jobs.values()) if job.provider == provider]

    def clear(self) -> None:
        with self.lock:
            self.files.clear()
            self.jobs.clear()
            self.faults.clear()
            self.uploads.clear()


def advance(job: Job, now: float, settings: MockSettings, log: RequestLog) -> Snapshot:
    """Run the lines that became due by `now`, metering each, and say where the job stands."""
    state = snapshot_at(job.timeline, now, invalid=bool(job.invalid), cancelled_at=job.cancelled_at)
    while len(job.results) < state.done:
        index = len(job.results)
        line = job.lines[index]
        record = log.start("POST", line.path, now)
        result = job.runner(line, index, job.timeline.faults, settings)
        job.results.append(result)
        record.provider, record.model, record.batch = job.provider, line.model, job.id
        record.arrived_at = record.finished_at = now
        record.status = result.status
        record.tokens = result.tokens
        record.body = line.body
    return state
