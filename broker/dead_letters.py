"""Dead letters (docs/api.md#admin-api): the jobs that failed for good, listed and put back in their
lanes.

``finish-5.lua`` and ``reclaim-6.lua`` push a failed job's id on ``dead:<pool>`` (newest first,
capped); its record expires with the result TTL like any finished job's. A requeue moves one
job per script call (``requeuedead-2.lua``), so each job moves atomically and a job that cannot
move (no longer dead, expired, its request not kept) is reported without affecting the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from anygate.broker.connection import awaited
from anygate.broker.keys import KeySpace
from anygate.broker.script_calls.requeuedead import (
    RequeueDeadArgs,
    RequeueDeadKeys,
    RequeueDeadOutcome,
    requeue_dead,
)
from anygate.broker.scripts import Scripts
from anygate.broker.tenants import TenantRecord

REQUEUE_MAX = 1_000
"""Dead letters one requeue call moves: each is a script call, and the call answers at once."""
DEAD_LIST_CAP = 10_000
"""As finish-5.lua trims it."""


def requeue_refusal(tenant: TenantRecord | None) -> str | None:
    """Why a dead job of this tenant must stay dead, if it must. A deleted tenant's work is not
    revived; a tenant whose calls may be paid with the client's own provider key lost that key
    when the job ended (it is deleted then), and requeuing would quietly bill the gateway's."""
    if tenant is None:
        return "tenant_deleted"
    if tenant.auth_mode != "gateway":
        return "client_key_gone"
    return None


@dataclass(frozen=True, slots=True)
class RequeueOutcome:
    requeued: list[str]
    skipped: list[tuple[str, str]]
    """(job id, reason) for each job left where it was."""


class DeadLetters:
    def __init__(self, redis: Redis, keys: KeySpace) -> None:
        self._redis = redis
        self._k = keys
        self._scripts = Scripts(redis)

    async def page(
        self, pool: str, *, after: str | None, limit: int
    ) -> tuple[list[tuple[str, dict[str, str], bool]], bool]:
        """Newest first: (job id, its record, whether its request was kept), and whether more
        follow. Ids whose record expired are dropped from the list here, as ``list_jobs``
        prunes the tenant index."""
        dead = self._k.dead(pool)
        start = 0
        if after:
            position: Any = await awaited(self._redis.lpos(dead, after))  # typed str, is int
            if position is None:
                return [], False
            start = int(position) + 1
        found: list[tuple[str, dict[str, str], bool]] = []
        seen: set[str] = set()
        while len(found) <= limit and start < DEAD_LIST_CAP:
            ids: list[str] = await awaited(self._redis.lrange(dead, start, start + limit))
            if not ids:
                break
            start += len(ids)
            async with self._redis.pipeline(transaction=False) as pipe:
                on = self._k.for_pool(pool)
                for job_id in ids:
                    pipe.hgetall(on.job(job_id))
                    pipe.exists(on.body(job_id))
                replies = await pipe.execute()
            gone = []
            for n, job_id in enumerate(ids):
                record, kept = replies[2 * n], replies[2 * n + 1]
                if not record:
                    gone.append(job_id)
                elif job_id not in seen:  # died twice: listed once
                    seen.add(job_id)
                    found.append((job_id, record, bool(kept)))
            if gone:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for job_id in gone:
                        pipe.lrem(dead, 0, job_id)
                    await pipe.execute()
                start -= len(gone)
        return found[:limit], len(found) > limit

    async def entry(self, pool: str, job_id: str) -> tuple[dict[str, str], bool, bool] | None:
        """One job of the pool: its record, whether its request was kept and whether it is
        still on the dead list; None once its record expired."""
        on = self._k.for_pool(pool)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(on.job(job_id))
            pipe.exists(on.body(job_id))
            pipe.lpos(self._k.dead(pool), job_id)
            record, kept, position = await pipe.execute()
        if not record:
            return None
        return record, bool(kept), position is not None

    async def newest_ids(self, pool: str, limit: int = REQUEUE_MAX) -> list[str]:
        ids: list[str] = await awaited(self._redis.lrange(self._k.dead(pool), 0, limit - 1))
        return list(dict.fromkeys(ids))

    async def job_tenants(self, pool: str, job_ids: Sequence[str]) -> dict[str, str]:
        """Job id → tenant, for the pool's dead jobs whose record still exists."""
        on = self._k.for_pool(pool)
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hget(on.job(job_id), "tenant")
            tenants: list[str | None] = await pipe.execute()
        return {j: t for j, t in zip(job_ids, tenants, strict=True) if t is not None}

    async def requeue(self, pool: str, job_ids: Iterable[str]) -> RequeueOutcome:
        """Each job back in its lane, atomically per job (requeuedead-2.lua); all the calls go
        out together and share round trips."""
        ids = list(dict.fromkeys(job_ids))
        k = self._k.for_pool(pool)
        replies = await asyncio.gather(
            *(
                requeue_dead(
                    self._scripts, RequeueDeadKeys.of(k, pool, j), RequeueDeadArgs(k.prefix, j)
                )
                for j in ids
            )
        )
        outcome = RequeueOutcome([], [])
        for job_id, reply in zip(ids, replies, strict=True):
            if reply is RequeueDeadOutcome.REQUEUED:
                outcome.requeued.append(job_id)
            else:
                outcome.skipped.append((job_id, reply.value))
        return outcome
