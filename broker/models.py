"""The job record, its events and the claimed-job view a worker gets.

Plain frozen dataclasses, not pydantic: they are built on the hot path from Redis replies that
our own scripts wrote, so validation would cost time and catch nothing.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import SecretStr

from anygate.config import Priority, TenantQuotas


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
        return self not in {JobStatus.QUEUED, JobStatus.RUNNING}


TERMINAL_EVENTS = frozenset({"completed", "failed", "cancelled", "expired"})

COUNT_TOKENS = "gemini:countTokens"
"""The internal endpoint of a Gemini ``:countTokens`` call (docs/api.md#gemini-compatible-surface):
only the Gemini surface queues it, and only Gemini deployments serve it. Not a public endpoint:
``POST /v1/jobs`` and batches do not accept it. Its body is Gemini's ``CountTokensRequest`` plus
the alias in ``model``, and its result is Gemini's ``CountTokensResponse`` as the provider sent it
(no OpenAI format exists for it)."""

# Endpoints are stored as short codes: every byte of a queued job's hash counts
# (docs/performance.md).
ENDPOINT_CODES = {
    "/v1/chat/completions": "chat",
    "/v1/embeddings": "embeddings",
    COUNT_TOKENS: "count_tokens",
}
ENDPOINTS_BY_CODE = {code: path for path, code in ENDPOINT_CODES.items()}


@dataclass(frozen=True, slots=True)
class NewJob:
    """What the API hands the broker to enqueue."""

    tenant: str
    pool: str
    endpoint: str
    model: str
    body: bytes
    priority: Priority
    stream: bool = True
    metadata: dict[str, str] = field(default_factory=dict)
    deadline_ms: int = 0
    webhook_url: str = ""
    tenant_weight: int = 1
    idempotency_key: str | None = None
    plan: str = ""
    """The route's steps (``routing.encode_plan``); the job starts in the first step's pool."""
    reply_to: str = ""
    """The API instance a synchronous caller waits on (its reply channel)."""
    quotas: TenantQuotas | None = None
    """The tenant's quotas as the API read them; None: the config file's (direct broker use)."""
    batch_id: str = ""
    """The batch this job is a line of (its end is counted on the batch); '' for none."""
    custom_id: str = ""
    keep_s: int = 0
    """Keep the finished job's record at least this long (a batch's output needs it)."""
    client_key: SecretStr | None = field(default=None, repr=False)
    """The client's provider key (BYOK), sealed by the broker with the job id as associated
    data; None: the gateway's own keys pay."""
    trace: str = ""
    """The trace this job belongs to, as ``telemetry/tracing.py`` encodes it (field ``tp``),
    read back by ``claim-13.lua`` for the worker's spans (docs/tracing.md); '' untraced."""
    parked_for: str = ""
    """The parked queue (``script_calls.provider_batch.parked_queue``) where the job waits for a
    provider batch (``core/execution.py`` chose it); '' for a live job."""
    cutoff_ms: int = 0
    """A parked job's live cutoff: if no provider batch has answered by then, it goes live."""

    def record_fields(self, sealed_client_key: str | None) -> list[str | int]:
        """The job record's fields as ``enqueue-2.lua`` writes them (field/value pairs; it adds
        ``status``, ``attempts``, ``ix`` and ``entry``); ``JobRecord.from_hash`` reads them back,
        and the scripts read the ones they route by. Optional fields are left out when unset:
        a smaller hash."""
        fields: list[str | int] = [
            "tenant",
            self.tenant,
            "pool",
            self.pool,
            "priority",
            self.priority.value,
            "endpoint",
            ENDPOINT_CODES[self.endpoint],
            "model",
            self.model,
        ]
        if self.stream:
            fields += ["stream", 1]
        if self.plan:
            fields += ["plan", self.plan, "step", 0]
        if self.reply_to:
            fields += ["reply_to", self.reply_to]
        if self.metadata:
            fields += ["metadata", orjson.dumps(self.metadata).decode()]
        if self.deadline_ms:
            fields += ["deadline_ms", self.deadline_ms]
        if self.webhook_url:
            fields += ["webhook_url", self.webhook_url]
        if self.batch_id:
            fields += ["batch", self.batch_id, "custom_id", self.custom_id]
        if self.keep_s:
            fields += ["keep_s", self.keep_s]
        if sealed_client_key is not None:
            fields += ["pk", sealed_client_key]
        if self.trace:
            fields += ["tp", self.trace]
        if self.parked_for:
            fields += ["execution", "provider_batch", "pbq", self.parked_for]
            fields += ["cutoff_ms", self.cutoff_ms]
        return fields


@dataclass(frozen=True, slots=True)
class Enqueued:
    job_id: str
    created: bool
    """False when an idempotency key returned an earlier job."""
    place: int
    created_ms: int = 0
    queued_in_pool: int = 0
    mean_service_ms: int | None = None
    worker_slots: int = 0


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    id: str
    attempt: int
    tenant: str
    endpoint: str
    model: str
    body: bytes
    priority: Priority
    stream: bool
    plan: str = ""
    step: int = 0
    step_started_attempt: int = 1
    cooled: int = 0
    """How often an upstream 429 sent the job back to wait (without spending an attempt)."""
    client_key: str = field(default="", repr=False)
    """The client's provider key, still sealed (``Broker.client_key`` opens it); '' if none."""
    reply_to: str = ""
    """The API instance whose synchronous caller waits for this job; '' for a queued job."""
    trace: str = ""
    """``NewJob.trace`` as the API stored it; '' when untraced (or queued before tracing)."""
    created_ms: int = 0
    """When the job was created (Redis's clock, ms); 0 if unknown."""
    queued_ms: int = 0
    """When the job entered the lane it was claimed from (Redis's clock, ms); 0 for a job
    claimed from the redeliveries (a retry, a lost lease: it waited a chosen delay)."""
    shard: str = ""
    """The shard the job was claimed on (its pool's; docs/scaling.md), which holds its keys
    whatever shard its id names (a job handed off from another shard)."""

    @property
    def synchronous(self) -> bool:
        """A caller is holding a connection open for the answer (the compatible surfaces)."""
        return bool(self.reply_to)

    @property
    def attempts_on_step(self) -> int:
        """Deliveries on the current deployment, this one included."""
        return self.attempt - self.step_started_attempt + 1


def _loads(raw: str | None) -> Any:
    return orjson.loads(raw) if raw else None


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: str
    tenant: str
    status: JobStatus
    priority: Priority
    endpoint: str
    model: str
    pool: str
    created_ms: int
    started_ms: int | None
    finished_ms: int | None
    attempts: int
    result: Any
    error: Any
    usage: Any
    cost_usd: float | None
    metadata: dict[str, str]
    deadline_ms: int
    history: list[dict[str, Any]] = field(default_factory=list)
    execution: str = "live"
    """``live`` or ``provider_batch`` (docs/api.md#native-job-api): the path the job takes, or
    took, to its provider."""

    @classmethod
    def queued(cls, job_id: str, job: NewJob, created_ms: int) -> JobRecord:
        """The record a fresh enqueue just wrote, without reading it back."""
        return cls(
            id=job_id,
            tenant=job.tenant,
            status=JobStatus.QUEUED,
            priority=job.priority,
            endpoint=job.endpoint,
            model=job.model,
            pool=job.pool,
            created_ms=created_ms,
            started_ms=None,
            finished_ms=None,
            attempts=0,
            result=None,
            error=None,
            usage=None,
            cost_usd=None,
            metadata=job.metadata,
            deadline_ms=job.deadline_ms,
            execution="provider_batch" if job.parked_for else "live",
        )

    @classmethod
    def from_hash(cls, job_id: str, h: dict[str, str]) -> JobRecord:
        def opt_int(name: str) -> int | None:
            v = h.get(name)
            return int(v) if v else None

        cost = h.get("cost")
        return cls(
            id=job_id,
            tenant=h["tenant"],
            status=JobStatus(h["status"]),
            priority=Priority(h["priority"]),
            endpoint=ENDPOINTS_BY_CODE[h["endpoint"]],
            model=h["model"],
            pool=h["pool"],
            created_ms=int(h["ix"].partition("-")[0]),  # the tenant index entry's time
            started_ms=opt_int("started_ms"),
            finished_ms=opt_int("finished_ms"),
            attempts=int(h.get("attempts") or 0),
            result=_loads(h.get("result")),
            error=_loads(h.get("error")),
            usage=_loads(h.get("usage")),
            cost_usd=float(cost) if cost else None,
            metadata=_loads(h.get("metadata")) or {},
            deadline_ms=int(h.get("deadline_ms") or 0),
            history=_loads(h.get("history")) or [],
            execution=h.get("execution") or "live",
        )

    def to_api(self) -> dict[str, Any]:
        """The job object of docs/api.md#native-job-api (timestamps in Unix seconds, as OpenAI's
        objects are)."""

        def secs(ms: int | None) -> float | None:
            return ms / 1000 if ms is not None else None

        return {
            "id": self.id,
            "object": "job",
            "status": self.status.value,
            "priority": self.priority.value,
            "endpoint": self.endpoint,
            "model": self.model,
            "provider": self.pool,
            "created_at": secs(self.created_ms),
            "started_at": secs(self.started_ms),
            "finished_at": secs(self.finished_ms),
            "deadline": secs(self.deadline_ms) if self.deadline_ms else None,
            "attempts": self.attempts,
            "result": self.result,
            "error": self.error,
            "usage": self.usage,
            "cost_usd": self.cost_usd,
            "metadata": self.metadata,
            "attempt_history": self.history,
            "execution": self.execution,
        }


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One entry of a job's event log; ``id`` is the stream id, used as the SSE ``id:``.
    ``attempt``: the delivery the event belongs to (chunks, ``started``, ``retry`` for the
    next one, the outcome), or None (``queued``, ``cancelled``, ``expired``)."""

    id: str
    type: str
    data: str
    attempt: int | None = None

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_EVENTS

    @classmethod
    def from_message(cls, payload: str) -> JobEvent:
        """An event as the scripts publish it (``record`` in ``_lib.lua``): stream id, type,
        attempt ('' for none) and data, one per line."""
        event_id, etype, attempt, data = payload.split("\n", 3)
        return cls(event_id, etype, data, int(attempt) if attempt else None)

    @classmethod
    def from_entry(cls, event_id: str, fields: dict[str, str]) -> JobEvent:
        """An event as the log keeps it: fields ``t`` type, ``d`` data, ``a`` attempt."""
        attempt = fields.get("a")
        return cls(event_id, fields["t"], fields["d"], int(attempt) if attempt else None)

    def to_message(self) -> str:
        """The inverse of ``from_message`` (what ``record`` publishes), for tests and replays."""
        attempt = "" if self.attempt is None else str(self.attempt)
        return f"{self.id}\n{self.type}\n{attempt}\n{self.data}"


def stream_id_key(event_id: str) -> tuple[int, int]:
    """Stream ids compare as (ms, seq) pairs, not as strings.

    For ids Redis gave us (event ids read from a stream); an id from a client goes through
    ``parse_stream_id`` first."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


STREAM_ID_PART_MAX = 2**64 - 1
"""Each part of a stream id is an unsigned 64-bit integer in Redis."""
LAST_STREAM_ID = (STREAM_ID_PART_MAX, STREAM_ID_PART_MAX)
"""No entry can follow this id: Redis refuses it as an exclusive range start."""
_STREAM_ID = re.compile(r"([0-9]+)(?:-([0-9]+))?", re.ASCII)
_PART_DIGITS = len(str(STREAM_ID_PART_MAX))


def parse_stream_id(text: str) -> tuple[int, int]:
    """A stream id a client sent (``<ms>`` or ``<ms>-<seq>``), checked in full, as a key.

    Redis refuses an id whose part is past 64 bits only once the command runs, which for an
    event stream is after the response has begun; and it reads ``+1``, `` 1`` or ``1-`` in
    ways nobody meant. So only ASCII decimal digits are accepted, each part within unsigned
    64 bits (leading zeros allowed, as Redis allows them); anything else raises
    ``ValueError``. ``<ms>`` alone means ``<ms>-0``, as it does to Redis for a range start.
    Send Redis ``format_stream_id`` of the key, never the text."""
    match = _STREAM_ID.fullmatch(text)
    if match is None:
        raise ValueError("expected <ms> or <ms>-<seq>, each part decimal digits")
    parts = [match.group(1), match.group(2) or "0"]
    for part in parts:
        # Counted before int(): a few thousand digits would make int() itself refuse.
        if len(part.lstrip("0")) > _PART_DIGITS or int(part) > STREAM_ID_PART_MAX:
            raise ValueError(f"each part must be at most {STREAM_ID_PART_MAX}")
    return int(parts[0]), int(parts[1])


def format_stream_id(key: tuple[int, int]) -> str:
    """The canonical spelling of a stream id key (``parse_stream_id``'s inverse)."""
    return f"{key[0]}-{key[1]}"
