"""``enqueue-6.lua``: queue one job, or say why not; the reply decoded."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
    job: str
    lane: str
    ring: str
    credits: str
    stats: str
    metrics: str

    @classmethod
    def of(
        cls, k: KeySpace, job_id: str, pool: str, priority: Priority, tenant: str
    ) -> EnqueueKeys:
        return cls(
            k.job(job_id),
            k.lane(pool, priority, tenant),
            k.ring(pool, priority),
            k.credits(pool, priority),
            k.stats(pool),
            k.metrics_jobs,
        )

    def keys(self) -> list[str]:
        return [self.job, self.lane, self.ring, self.credits, self.stats, self.metrics]


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
        return [
            self.prefix,
            self.job_id,
            self.pool,
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


async def enqueue(
    scripts: Scripts, keys: EnqueueKeys, args: EnqueueArgs
) -> Accepted | QueueFull | QuotaSpent:
    """Besides its keys, the script touches, under the prefix: ``idem:<tenant>:<digest>``,
    ``tjobs:<tenant>``, ``tweight:<pool>``, ``tqueued``, ``usage:<tenant>:<period>`` (read),
    ``workers:<pool>`` (read) and ``idle:<pool>`` / ``wake:<pool>``."""
    return decode_enqueue(await scripts.enqueue.call(keys, args))
