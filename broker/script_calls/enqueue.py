"""``enqueue-2.lua``: queue jobs (many of one pool in one call), or say why not; the replies
decoded."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from anygate.broker.keys import KeySpace
from anygate.broker.scripts import Arg, Scripts
from anygate.config import Priority


class EnqueueOutcome(enum.StrEnum):
    """The script's ``OUTCOME`` table."""

    NEW = "new"
    EXISTING = "existing"
    """The idempotency key named an earlier job with the same body."""
    CONFLICT = "conflict"
    """The idempotency key named an earlier job with another body."""
    QUEUE_FULL = "queue_full"
    INSUFFICIENT_QUOTA = "insufficient_quota"


class QuotaPeriod(enum.StrEnum):
    """The script's ``PERIOD`` table: the budget a refused job found spent."""

    DAY = "day"
    MONTH = "month"


class QuotaMeasure(enum.StrEnum):
    """The script's ``MEASURE`` table."""

    TOKENS = "tokens"
    USD = "usd"


@dataclass(frozen=True, slots=True)
class EnqueueKeys:
    """The pool's keys: one call queues any number of its jobs (each job's hash, lane, class
    ring and credits are derived from the prefix, in the same slot)."""

    stats: str
    metrics: str

    @classmethod
    def of(cls, k: KeySpace, pool: str) -> EnqueueKeys:
        return cls(k.stats(pool), k.metrics_jobs)

    def keys(self) -> list[str]:
        return [self.stats, self.metrics]


@dataclass(frozen=True, slots=True)
class EnqueueArgs:
    prefix: str
    job_id: str
    pool: str
    priority: Priority
    tenant: str
    tenant_weight: int
    idempotency_digest: str
    """'' without an idempotency key."""
    idempotency_ttl_s: int
    body_digest: str
    body: str
    submit_limits: str
    """``quotas.submit_limits``: '' when nothing can refuse the tenant's jobs."""
    fields: Sequence[str | int]
    """Field/value pairs of the job record (``models.NewJob``)."""

    def argv(self) -> list[Arg]:
        """A call that queues this job alone."""
        return [self.prefix, self.pool, *self.job_argv()]

    def job_argv(self) -> list[Arg]:
        """This job's part of a call: the count of its arguments, then the arguments."""
        part: list[Arg] = [
            self.job_id,
            self.priority.value,
            self.tenant,
            self.tenant_weight,
            self.idempotency_digest,
            self.idempotency_ttl_s,
            self.body_digest,
            self.body,
            self.submit_limits,
            *self.fields,
        ]
        return [len(part), *part]


@dataclass(frozen=True, slots=True)
class Accepted:
    """A job queued now (``NEW``), or the earlier job an idempotency key names."""

    outcome: EnqueueOutcome
    job_id: str
    place: int
    created_ms: int
    queued_in_pool: int
    mean_service_ms: int | None
    worker_slots: int


@dataclass(frozen=True, slots=True)
class QueueFull:
    """The tenant's max queued jobs refused it; nothing was written."""

    queued: int
    mean_service_ms: float | None


@dataclass(frozen=True, slots=True)
class QuotaSpent:
    """A daily or monthly budget refused it; nothing was written."""

    period: QuotaPeriod
    measure: QuotaMeasure


def decode_enqueue(reply: list[Any]) -> Accepted | QueueFull | QuotaSpent:
    outcome = EnqueueOutcome(reply[1])
    if outcome is EnqueueOutcome.QUEUE_FULL:
        queued = int(reply[3]) if len(reply) > 3 and reply[3] else 0
        return QueueFull(queued, float(reply[2]) if reply[2] else None)
    if outcome is EnqueueOutcome.INSUFFICIENT_QUOTA:
        return QuotaSpent(QuotaPeriod(reply[2]), QuotaMeasure(reply[3]))
    return Accepted(
        outcome=outcome,
        job_id=reply[0],
        place=int(reply[2]),
        created_ms=int(reply[3]),
        queued_in_pool=int(reply[4]),
        mean_service_ms=int(reply[5]) if reply[5] else None,
        worker_slots=int(reply[6]),
    )


@dataclass(frozen=True, slots=True)
class EnqueueGroup:
    """What the jobs of one call share: their pool's keys, the prefix, the pool."""

    keys: EnqueueKeys
    prefix: str
    pool: str


class EnqueueError(ResponseError):
    """The script's error for one job of a call (the other jobs' outcomes stand)."""


Outcome = Accepted | QueueFull | QuotaSpent


async def enqueue_many(
    scripts: Scripts, group: EnqueueGroup, jobs: Sequence[EnqueueArgs]
) -> list[Outcome | BaseException]:
    """Per job, in order: its outcome, or an ``EnqueueError``. Besides its keys, the script
    touches, under the prefix: each job's hash, lane, class ring and credits,
    ``idem:<tenant>:<digest>``, ``tjobs:<tenant>``, ``tweight:<pool>``, ``tqueued``,
    ``usage:<tenant>:<period>`` (read), ``workers:<pool>`` (read) and ``idle:<pool>`` /
    ``wake:<pool>``."""
    argv: list[Arg] = [group.prefix, group.pool]
    for job in jobs:
        argv.extend(job.job_argv())
    replies = await scripts.enqueue(group.keys.keys(), argv)
    return [_outcome(reply) for reply in replies]


def _outcome(reply: Any) -> Outcome | BaseException:
    if isinstance(reply, bytes | str):
        return EnqueueError(reply.decode() if isinstance(reply, bytes) else reply)
    return decode_enqueue(reply)
