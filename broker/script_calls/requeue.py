"""``requeue-6.lua``: a running job back to a queue, this pool's or its fallback's."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import orjson

from anygate.broker.keys import KeySpace
from anygate.broker.scripts import Arg, Scripts


class RequeueReason(enum.StrEnum):
    """The reasons the script acts on (its ``REASON`` table); any other reason is only
    recorded in the ``retry`` event."""

    UPSTREAM_RATE_LIMITED = "upstream_rate_limited"
    """An upstream 429: counted in the job's ``cooled`` (no attempt spent)."""


@dataclass(frozen=True, slots=True)
class RequeueKeys:
    job: str
    leases: str
    """This pool's, and its stats next: the job leaves them."""
    stats: str
    target_redeliver: str
    target_delayed: str
    target_stats: str

    @classmethod
    def of(cls, k: KeySpace, job_id: str, pool: str, target: str) -> RequeueKeys:
        return cls(
            k.job(job_id),
            k.leases(pool),
            k.stats(pool),
            k.redeliver(target),
            k.delayed(target),
            k.stats(target),
        )

    def keys(self) -> list[str]:
        return [
            self.job,
            self.leases,
            self.stats,
            self.target_redeliver,
            self.target_delayed,
            self.target_stats,
        ]


@dataclass(frozen=True, slots=True)
class RequeueArgs:
    prefix: str
    job_id: str
    attempt: int
    delay_ms: int
    reason: str
    refund_attempt: bool
    target_pool: str
    target_step: int
    history_json: str
    """One JSON value (orjson), or ''."""
    next_model: str | None = None
    """The model the next attempt calls, when it changes (the ``retry`` event says so)."""

    def argv(self) -> list[Arg]:
        return [
            self.prefix,
            self.job_id,
            self.attempt,
            self.delay_ms,
            self.reason,
            int(self.refund_attempt),
            self.target_pool,
            self.target_step,
            self.history_json,
            encode_model(self.next_model),
        ]


def encode_model(model: str | None) -> str:
    """ARGV 10: the model as one JSON string, which the script places in the ``retry`` event's
    JSON as it is (orjson's spelling, as ever); '' for none."""
    return orjson.dumps(model).decode() if model else ""


async def requeue(scripts: Scripts, keys: RequeueKeys, args: RequeueArgs) -> bool:
    """False when the attempt no longer owns the job. Besides its keys, the script touches,
    under the prefix: ``tinflight``, ``tqueued``, the job's lane and ``body:``, ``ev:``,
    ``n:`` and ``reply:``, ``idle:`` / ``wake:<target pool>``."""
    return bool(await scripts.requeue.call(keys, args) == 1)
