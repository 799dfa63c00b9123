"""A fallback into a pool on another shard: the two-step hand-off (docs/scaling.md#hand-off).

A script touches one slot, so a job cannot move between shards in one atomic step. Instead:

1. ``handoff-5.lua`` on the job's shard turns the running job into a *parcel* (listed in the
   shard's ``handoffs`` set) and leaves a forwarding record behind;
2. ``adopt-5.lua`` on the target shard queues the parcel as a job, unless the job is already
   there; then the parcel is dropped from the source.

A process that dies between the steps leaves the parcel listed; every reclaim pass (workers and
control) sweeps parcels older than ``SWEEP_AFTER_S`` and runs step 2 again, which is a no-op for
a job already adopted. So a crash at any point neither loses the job nor queues it twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from redis.asyncio import Redis

from anygate.broker.connection import awaited
from anygate.broker.keys import KeySpace
from anygate.broker.models import ClaimedJob
from anygate.broker.script_calls.handoff import (
    AdoptArgs,
    AdoptKeys,
    HandOffArgs,
    HandOffKeys,
    adopt,
    hand_off,
)
from anygate.broker.scripts import Scripts

SWEEP_AFTER_S = 5.0
"""How old a listed parcel must be before a sweep adopts it: a live hand-off takes two round
trips, so a parcel this old was left by a process that stopped between the steps."""


@dataclass(frozen=True, slots=True)
class HandOffRequest:
    """What ``Leases.requeue`` asks of a hand-off (its arguments, for another shard)."""

    pool: str
    target_pool: str
    target_step: int
    reason: str
    refund_attempt: bool
    delay_ms: int
    history_json: str
    next_model_json: str


class HandOff:
    def __init__(self, redis: Redis, scripts: Scripts, keys: KeySpace) -> None:
        self._redis = redis
        self._scripts = scripts
        self._k = keys

    async def send(self, job: ClaimedJob, request: HandOffRequest) -> bool:
        """Both steps; False when this attempt no longer owns the job (nothing was done)."""
        source = self._k.on(job.shard)
        target = self._k.shard_of_pool(request.target_pool)
        args = HandOffArgs(
            prefix=source.prefix,
            job_id=job.id,
            attempt=job.attempt,
            target_shard=target,
            target_pool=request.target_pool,
            target_step=request.target_step,
            history_json=request.history_json,
            reason=request.reason,
            refund_attempt=request.refund_attempt,
            next_model_json=request.next_model_json,
            delay_ms=request.delay_ms,
        )
        parcel = await hand_off(self._scripts, HandOffKeys.of(source, job.id, request.pool), args)
        if parcel is None:
            return False
        await self.deliver(job.id, source, target, request.target_pool, parcel)
        return True

    async def deliver(
        self, job_id: str, source: KeySpace, target_shard: str, pool: str, parcel: str
    ) -> bool:
        """Step 2, then the parcel goes: True if this call queued the job."""
        target = self._k.on(target_shard)
        adopted = await adopt(
            self._scripts,
            AdoptKeys.of(target, job_id, pool),
            AdoptArgs(target.prefix, job_id, pool, parcel),
        )
        async with self._redis.pipeline(transaction=False) as pipe:  # one slot: the source's
            pipe.zrem(source.handoffs, f"{job_id}|{target_shard}")
            pipe.delete(source.parcel(job_id))
            await pipe.execute()
        return adopted

    async def sweep(self, shard: str, limit: int = 100) -> int:
        """Finish the hand-offs a process left half done on ``shard``; how many it queued."""
        source = self._k.on(shard)
        seconds, micros = await awaited(self._redis.time())
        older_than_ms = int(seconds) * 1000 + int(micros) // 1000 - int(SWEEP_AFTER_S * 1000)
        members: list[str] = await awaited(
            self._redis.zrangebyscore(source.handoffs, "-inf", older_than_ms, start=0, num=limit)
        )
        adopted = 0
        for member in members:
            job_id, _, target_shard = member.rpartition("|")
            parcel: str | None = await awaited(self._redis.get(source.parcel(job_id)))
            if parcel is None:  # the hand-off ended meanwhile
                await awaited(self._redis.zrem(source.handoffs, member))
                continue
            pool = _field(parcel, "pool")
            adopted += await self.deliver(job_id, source, target_shard, pool, parcel)
        return adopted


def _field(parcel: str, name: str) -> str:
    """A field of the parcel's job record (HGETALL's flat list, as the script stored it)."""
    flat = orjson.loads(parcel)["job"]
    fields = dict(zip(flat[::2], flat[1::2], strict=True))
    return str(fields[name])
