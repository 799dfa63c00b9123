"""``handoff-5.lua`` and ``adopt-5.lua``: a job moving to a pool on another shard, in two steps
(``broker/handoff.py`` drives them)."""

from __future__ import annotations

from dataclasses import dataclass

from anygate.broker.keys import KeySpace
from anygate.broker.scripts import Arg, Scripts


@dataclass(frozen=True, slots=True)
class HandOffKeys:
    """On the job's shard (``k`` is ``on`` it)."""

    job: str
    leases: str
    stats: str
    events: str
    handoffs: str

    @classmethod
    def of(cls, k: KeySpace, job_id: str, pool: str) -> HandOffKeys:
        return cls(k.job(job_id), k.leases(pool), k.stats(pool), k.events(job_id), k.handoffs)

    def keys(self) -> list[str]:
        return [self.job, self.leases, self.stats, self.events, self.handoffs]


@dataclass(frozen=True, slots=True)
class HandOffArgs:
    prefix: str
    job_id: str
    attempt: int
    target_shard: str
    target_pool: str
    target_step: int
    history_json: str
    reason: str
    refund_attempt: bool
    next_model_json: str
    """``requeue.encode_model`` of the next attempt's model, or ''."""
    delay_ms: int

    def argv(self) -> list[Arg]:
        return [
            self.prefix,
            self.job_id,
            self.attempt,
            self.target_shard,
            self.target_pool,
            self.target_step,
            self.history_json,
            self.reason,
            "1" if self.refund_attempt else "0",
            self.next_model_json,
            self.delay_ms,
        ]


@dataclass(frozen=True, slots=True)
class AdoptKeys:
    """On the target shard (``k`` is ``on`` it)."""

    job: str
    events: str
    redeliver: str
    delayed: str
    stats: str

    @classmethod
    def of(cls, k: KeySpace, job_id: str, pool: str) -> AdoptKeys:
        return cls(
            k.job(job_id), k.events(job_id), k.redeliver(pool), k.delayed(pool), k.stats(pool)
        )

    def keys(self) -> list[str]:
        return [self.job, self.events, self.redeliver, self.delayed, self.stats]


@dataclass(frozen=True, slots=True)
class AdoptArgs:
    prefix: str
    job_id: str
    pool: str
    parcel: str

    def argv(self) -> list[Arg]:
        return [self.prefix, self.job_id, self.pool, self.parcel]


async def hand_off(scripts: Scripts, keys: HandOffKeys, args: HandOffArgs) -> str | None:
    """Step 1: the parcel (JSON), or None when the attempt no longer owns the job. Besides its
    keys, the script touches, under the prefix: the job's lane entry and ``body:``,
    ``tinflight`` and ``parcel:<id>``."""
    reply = await scripts.handoff.call(keys, args)
    return reply if isinstance(reply, str) else None


async def adopt(scripts: Scripts, keys: AdoptKeys, args: AdoptArgs) -> bool:
    """Step 2: True if this call queued the job, False if it was there already. Besides its
    keys, the script touches, under the prefix: ``body:``, ``tqueued``, ``idle:`` / ``wake:``,
    and publishes the retry event on the job's channel."""
    return bool(await scripts.adopt.call(keys, args))
