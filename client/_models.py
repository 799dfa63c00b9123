"""Typed results: what the gateway answers, as frozen dataclasses built from its JSON.

Each keeps the whole answer in ``raw``, so a field this version does not name is still there;
the named ones are read leniently (a missing field is None), because a newer gateway may add
fields and an older one may lack some (docs/api.md names them all).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JOB_TERMINAL = frozenset({"succeeded", "failed", "cancelled", "expired"})
"""Job statuses after which nothing changes."""
EVENT_TERMINAL = frozenset({"completed", "failed", "cancelled", "expired"})
"""Event types that end a job's event stream."""
BATCH_TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
"""Batch statuses after which nothing changes."""


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: Any, default: int | None = None) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


@dataclass(frozen=True, slots=True)
class Job:
    """A job object (docs/api.md#native-job-api)."""

    id: str
    status: str
    endpoint: str | None = None
    model: str | None = None
    provider: str | None = None
    priority: str | None = None
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    deadline: float | None = None
    attempts: int = 0
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None
    cost_usd: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    queue_position: int | None = None
    """Only on the answer to the submit that created the job: its place in its lane."""
    estimated_start_at: float | None = None
    execution: str = "live"
    """``live``, or ``provider_batch``: sent to the provider's own Batch API at its discount."""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Job:
        metadata = _dict(data.get("metadata")) or {}
        return cls(
            id=str(data.get("id", "")),
            status=str(data.get("status", "")),
            endpoint=_str(data.get("endpoint")),
            model=_str(data.get("model")),
            provider=_str(data.get("provider")),
            priority=_str(data.get("priority")),
            created_at=_float(data.get("created_at")),
            started_at=_float(data.get("started_at")),
            finished_at=_float(data.get("finished_at")),
            deadline=_float(data.get("deadline")),
            attempts=_int(data.get("attempts"), 0) or 0,
            result=_dict(data.get("result")),
            error=_dict(data.get("error")),
            usage=_dict(data.get("usage")),
            cost_usd=_float(data.get("cost_usd")),
            metadata={str(k): str(v) for k, v in metadata.items()},
            queue_position=_int(data.get("queue_position")),
            estimated_start_at=_float(data.get("estimated_start_at")),
            execution=_str(data.get("execution")) or "live",
            raw=data,
        )

    @property
    def done(self) -> bool:
        """The job has ended (succeeded, failed, cancelled or expired)."""
        return self.status in JOB_TERMINAL

    @property
    def text(self) -> str | None:
        """The assistant's text of a succeeded chat job; None for any other job."""
        if self.status != "succeeded" or self.result is None:
            return None
        choices = self.result.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return None
        message = _dict(choices[0].get("message")) or {}
        return _str(message.get("content"))


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One event of a job's log (docs/api.md#job-events-sse): ``id`` is its stream id, the
    ``Last-Event-ID`` to resume after it."""

    id: str
    type: str
    data: dict[str, Any]

    @property
    def attempt(self) -> int | None:
        """The delivery a ``chunk`` (or ``started``, ``retry``, outcome) belongs to."""
        return _int(self.data.get("attempt"))

    @property
    def terminal(self) -> bool:
        return self.type in EVENT_TERMINAL


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of a streamed answer's text. ``restart``: a new attempt began (the worker that
    was streaming died, or the call was retried): throw away the text received so far before
    appending ``text``."""

    text: str
    restart: bool = False


@dataclass(frozen=True, slots=True)
class FileObject:
    """OpenAI's file object, as ``/v1/files`` answers it."""

    id: str
    bytes: int
    filename: str
    purpose: str
    status: str | None = None
    created_at: int | None = None
    expires_at: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> FileObject:
        return cls(
            id=str(data.get("id", "")),
            bytes=_int(data.get("bytes"), 0) or 0,
            filename=str(data.get("filename", "")),
            purpose=str(data.get("purpose", "")),
            status=_str(data.get("status")),
            created_at=_int(data.get("created_at")),
            expires_at=_int(data.get("expires_at")),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class BatchRequestCounts:
    total: int = 0
    completed: int = 0
    failed: int = 0

    @property
    def finished(self) -> int:
        """Lines with an outcome, good or bad."""
        return self.completed + self.failed


@dataclass(frozen=True, slots=True)
class Batch:
    """OpenAI's batch object, as ``/v1/batches`` answers it."""

    id: str
    status: str
    endpoint: str | None = None
    input_file_id: str | None = None
    request_counts: BatchRequestCounts = field(default_factory=BatchRequestCounts)
    output_file_id: str | None = None
    error_file_id: str | None = None
    created_at: int | None = None
    metadata: dict[str, str] | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    """Why a batch failed as a whole (its ``errors.data``)."""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Batch:
        counts = _dict(data.get("request_counts")) or {}
        errors = (_dict(data.get("errors")) or {}).get("data")
        metadata = _dict(data.get("metadata"))
        return cls(
            id=str(data.get("id", "")),
            status=str(data.get("status", "")),
            endpoint=_str(data.get("endpoint")),
            input_file_id=_str(data.get("input_file_id")),
            request_counts=BatchRequestCounts(
                total=_int(counts.get("total"), 0) or 0,
                completed=_int(counts.get("completed"), 0) or 0,
                failed=_int(counts.get("failed"), 0) or 0,
            ),
            output_file_id=_str(data.get("output_file_id")),
            error_file_id=_str(data.get("error_file_id")),
            created_at=_int(data.get("created_at")),
            metadata={str(k): str(v) for k, v in metadata.items()} if metadata else None,
            errors=[e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else [],
            raw=data,
        )

    @property
    def done(self) -> bool:
        """The batch has ended (completed, failed, expired or cancelled)."""
        return self.status in BATCH_TERMINAL


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One line of a batch's output or error file.

    ``ok``: the request succeeded (``status_code`` 2xx, ``body`` its answer). A request the
    provider refused has its ``status_code`` and the error in ``body``; one that never ran
    (cancelled, expired, a bad line) has no ``status_code`` and the reason in ``error``."""

    custom_id: str | None
    status_code: int | None
    body: dict[str, Any] | None
    error: dict[str, Any] | None
    ok: bool
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_line(cls, data: dict[str, Any]) -> BatchResult:
        response = _dict(data.get("response")) or {}
        status = _int(response.get("status_code"))
        body = _dict(response.get("body"))
        error = _dict(data.get("error"))
        if error is None and body is not None and status is not None and status >= 400:
            error = _dict(body.get("error"))
        ok = status is not None and 200 <= status < 300 and error is None
        return cls(_str(data.get("custom_id")), status, body, error, ok, raw=data)
