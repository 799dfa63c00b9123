"""``requeuedead-2.lua``: one dead letter back to its route's first lane (admin API)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from anygate.broker.keys import KeySpace
from anygate.broker.scripts import Arg, Scripts


class RequeueDeadOutcome(enum.StrEnum):
    """The script's ``OUTCOME`` table: requeued, or why not (the admin API reports it as the
    job's ``reason``)."""

    REQUEUED = "requeued"
    EXPIRED = "expired"
    NOT_DEAD = "not_dead"
    BODY_GONE = "body_gone"
    DEADLINE_PASSED = "deadline_passed"
    BATCH_JOB = "batch_job"


@dataclass(frozen=True, slots=True)
class RequeueDeadKeys:
    dead: str
    job: str

    @classmethod
    def of(cls, k: KeySpace, pool: str, job_id: str) -> RequeueDeadKeys:
        return cls(k.dead(pool), k.job(job_id))

    def keys(self) -> list[str]:
        return [self.dead, self.job]


@dataclass(frozen=True, slots=True)
class RequeueDeadArgs:
    prefix: str
    job_id: str

    def argv(self) -> list[Arg]:
        return [self.prefix, self.job_id]


async def requeue_dead(
    scripts: Scripts, keys: RequeueDeadKeys, args: RequeueDeadArgs
) -> RequeueDeadOutcome:
    """Besides its keys, the script touches, under the prefix, as ``enqueue-2.lua`` writes them:
    the target pool's lane, class ring and credits, ``stats:``, ``tweight:``; the job's
    ``body:``, ``ev:`` and ``n:``; ``tqueued``; ``idle:`` / ``wake:<pool>``."""
    return RequeueDeadOutcome(await scripts.requeuedead.call(keys, args))
