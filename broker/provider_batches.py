"""The Redis side of provider batches: jobs parked for one, taken into one, answered by one or
sent back to live calls, and the records of the batches the control plane follows.

A parked job is queued, with its body in its own key, in ``pbq:<pool>:<queue>`` scored by its
live cutoff. ``take`` moves the most urgent into a new batch (``pbtake-5.lua``, with the
batch's record in the same step); ``release`` sends parked or held jobs to the front of their
pool's redeliveries (``pbrelease-3.lua``), and ``finish`` records answers with ``finish-5.lua``,
whose attempt fence makes each job end once however its batch ends.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from anygate.broker.connection import awaited
from anygate.broker.keys import KeySpace
from anygate.broker.script_calls.finish import FinishArgs, FinishGroup, FinishKeys, finish_many
from anygate.broker.script_calls.provider_batch import (
    ReleaseArgs,
    ReleaseKeys,
    TakeArgs,
    TakeKeys,
    TakenJob,
    release,
    take,
)
from anygate.broker.scripts import Scripts

FINISH_CHUNK = 64
"""Jobs per finish call, as the workers' coalescer sends them."""


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """A provider batch the control plane follows (``pb:<id>``)."""

    id: str
    pool: str
    queue: str
    state: str
    """``taken`` (jobs held, not yet sent), ``submitted``, ``cancelling``."""
    created_ms: int
    cutoff_ms: int
    jobs: int
    remote_id: str = ""

    @classmethod
    def from_hash(cls, batch_id: str, h: dict[str, str]) -> BatchRecord:
        return cls(
            id=batch_id,
            pool=h["pool"],
            queue=h["queue"],
            state=h["state"],
            created_ms=int(h["created_ms"]),
            cutoff_ms=int(h["cutoff_ms"]),
            jobs=int(h["jobs"]),
            remote_id=h.get("remote", ""),
        )


class ProviderBatchStore:
    def __init__(self, redis: Redis, keys: KeySpace, scripts: Scripts, *, ttl_s: int) -> None:
        """``ttl_s``: how long a finished job's record is kept (``retention.result_ttl_s``)."""
        self._redis = redis
        self._k = keys
        self._scripts = scripts
        self._ttl_s = ttl_s

    def _on(self, pool: str) -> KeySpace:
        return self._k.on(self._k.shard_of_pool(pool))

    async def queues(self, pool: str) -> set[str]:
        """The pool's parked queues that ever held a job."""
        names = await awaited(self._redis.smembers(self._k.provider_batch_queues(pool)))
        return {str(n) for n in names}

    async def lock(self, pool: str, name: str, ttl_ms: int) -> str | None:
        """A token when this process now holds ``name`` for ``ttl_ms``, else None."""
        token = secrets.token_hex(8)
        key = self._k.provider_batch_lock(pool, name)
        got = await awaited(self._redis.set(key, token, nx=True, px=ttl_ms))
        return token if got else None

    async def unlock(self, pool: str, name: str, token: str) -> None:
        """Only our own lock: one that lapsed and was taken by another stays theirs."""
        key = self._k.provider_batch_lock(pool, name)
        held = await awaited(self._redis.get(key))
        if held == token:
            await awaited(self._redis.delete(key))

    async def models(self, pool: str, job_ids: Sequence[str]) -> dict[str, str]:
        """Each job's model (the alias its usage is counted under)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hget(self._k.job(job_id), "model")
            found = await pipe.execute()
        return {job_id: str(m) for job_id, m in zip(job_ids, found, strict=True) if m is not None}

    async def paused(self, pool: str) -> bool:
        """An operator holds the pool (``POST /admin/pools/{pool}/pause``): no batch is taken."""
        return bool(await awaited(self._redis.exists(self._k.paused(pool))))

    async def parked(self, pool: str, queue: str) -> int:
        return int(await awaited(self._redis.zcard(self._k.parked(pool, queue))))

    async def overdue(self, pool: str, queue: str, before_ms: float, limit: int) -> list[str]:
        """Parked jobs whose cutoff comes before ``before_ms`` (too late for a batch)."""
        ids = await awaited(
            self._redis.zrangebyscore(self._k.parked(pool, queue), "-inf", before_ms, 0, limit)
        )
        return [str(i) for i in ids]

    async def take(
        self, pool: str, queue: str, batch_id: str, *, max_jobs: int, min_cutoff_ms: int
    ) -> list[TakenJob]:
        k = self._on(pool)
        args = TakeArgs(k.prefix, pool, batch_id, max_jobs, min_cutoff_ms, queue)
        return await take(self._scripts, TakeKeys.of(k, pool, queue, batch_id), args)

    async def release(
        self,
        pool: str,
        queue: str,
        jobs: Sequence[tuple[str, int | None]],
        *,
        batch_id: str = "",
        reason: str,
    ) -> list[bool]:
        """Send jobs live: parked ones (``batch_id`` ''), or ones the batch holds, each with
        the attempt it holds."""
        k = self._on(pool)
        args = ReleaseArgs(k.prefix, pool, batch_id, reason, jobs)
        return await release(self._scripts, ReleaseKeys.of(k, pool, queue), args)

    async def finish(self, pool: str, jobs: Sequence[FinishArgs]) -> list[bool | BaseException]:
        """Record answers, ``FINISH_CHUNK`` jobs per call; per job as ``finish_many``."""
        k = self._on(pool)
        group = FinishGroup(FinishKeys.of(k, pool), k.prefix, self._ttl_s)
        out: list[bool | BaseException] = []
        for start in range(0, len(jobs), FINISH_CHUNK):
            out += await finish_many(self._scripts, group, jobs[start : start + FINISH_CHUNK])
        return out

    def prefix(self, pool: str) -> str:
        """The prefix a finish of the pool's jobs names (``FinishArgs.prefix``)."""
        return self._on(pool).prefix

    async def submitted(self, record: BatchRecord, remote_id: str) -> None:
        await awaited(
            self._redis.hset(
                self._k.provider_batch(record.pool, record.id),
                mapping={"state": "submitted", "remote": remote_id},
            )
        )

    async def cancelling(self, record: BatchRecord) -> None:
        await awaited(
            self._redis.hset(self._k.provider_batch(record.pool, record.id), "state", "cancelling")
        )

    async def active(self, pool: str) -> list[BatchRecord]:
        """The pool's batches not yet finished with, the most urgent first."""
        ids = await awaited(self._redis.zrange(self._k.provider_batches(pool), 0, -1))
        out = []
        for raw in ids:
            batch_id = str(raw)
            h = await awaited(self._redis.hgetall(self._k.provider_batch(pool, batch_id)))
            if h:
                out.append(BatchRecord.from_hash(batch_id, h))
        return out

    async def current(self, record: BatchRecord) -> BatchRecord | None:
        """The record as it is now (another process may have moved it on, or finished it)."""
        h = await awaited(self._redis.hgetall(self._k.provider_batch(record.pool, record.id)))
        return BatchRecord.from_hash(record.id, h) if h else None

    async def held(self, record: BatchRecord) -> dict[str, int]:
        """The batch's jobs and the attempt it holds of each."""
        h = await awaited(self._redis.hgetall(self._k.provider_batch_jobs(record.pool, record.id)))
        return {job: int(attempt) for job, attempt in h.items()}

    async def forget(self, record: BatchRecord) -> None:
        """The batch is finished with: every job it held was answered or sent live. Out of the
        followed set first: a death in between leaves two keys nobody reads, never a batch
        followed without its record."""
        await awaited(self._redis.zrem(self._k.provider_batches(record.pool), record.id))
        await awaited(
            self._redis.delete(
                self._k.provider_batch(record.pool, record.id),
                self._k.provider_batch_jobs(record.pool, record.id),
            )
        )
