"""The API's side of the job queue: enqueue, read, list, replay and cancel jobs.

Every change of a job's state is one Lua script call (``script_calls``), so it is atomic; this
class maps Python values to the scripts' typed keys and arguments, and reads what needs no
script (a job's record, its event log, the tenant's index).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import orjson
from redis.asyncio import Redis

from anygate.broker.client_keys import ClientKeyBox
from anygate.broker.coalescer import Coalescer
from anygate.broker.connection import awaited
from anygate.broker.errors import IdempotencyConflictError
from anygate.broker.ids import digest
from anygate.broker.keys import MOVED, KeySpace, job_shard
from anygate.broker.models import (
    LAST_STREAM_ID,
    Enqueued,
    JobEvent,
    JobRecord,
    JobStatus,
    NewJob,
    format_stream_id,
    parse_stream_id,
    stream_id_key,
)
from anygate.broker.quotas import refusal, submit_limits, usage_periods
from anygate.broker.record_batch import BatchedReads
from anygate.broker.script_calls.cancel import DEFAULT_REASON, CancelArgs, CancelKeys, cancel
from anygate.broker.script_calls.enqueue import (
    Accepted,
    EnqueueArgs,
    EnqueueGroup,
    EnqueueKeys,
    EnqueueOutcome,
    Outcome,
    enqueue_many,
)
from anygate.broker.scripts import Scripts
from anygate.broker.shard_quotas import submit_elsewhere
from anygate.config import AnygateConfig, TenantQuotas

_UNLIMITED = TenantQuotas()
QUEUED_EVENT_ID = (0, 1)
"""Every job's log begins with its ``queued`` event, at this id, read but never stored."""
QUEUED_EVENT_ID_TEXT = format_stream_id(QUEUED_EVENT_ID)


class JobQueue:
    def __init__(
        self, redis: Redis, scripts: Scripts, keys: KeySpace, config: AnygateConfig
    ) -> None:
        self._redis = redis
        self._scripts = scripts
        self._k = keys
        self._ttl_s = config.retention.result_ttl_s
        self._idem_ttl_s = config.retention.idempotency_ttl_s
        self._quotas = {t.id: t.quotas for t in config.tenants}
        self._client_keys = ClientKeyBox.from_config(config.security)
        self._batched = BatchedReads(self._records)
        self._enqueues: Coalescer[EnqueueGroup, EnqueueArgs, Outcome] = Coalescer(
            self._enqueue_many
        )
        """The submits of one event-loop turn, one script call per pool (``enqueue-2.lua``)."""

    async def _enqueue_many(
        self, group: EnqueueGroup, jobs: Sequence[EnqueueArgs]
    ) -> list[Outcome | BaseException]:
        return await enqueue_many(self._scripts, group, jobs)

    async def enqueue(self, job: NewJob, job_id: str) -> Enqueued:
        """Queue the job, or raise ``QueueFullError`` / ``InsufficientQuotaError`` when one of
        the tenant's limits refuses it (then nothing at all was written)."""
        k = self._k.for_pool(job.pool)
        if job_shard(job_id) != k.shard:
            raise ValueError(f"job id {job_id!r} does not name pool {job.pool!r}'s shard")
        quotas = job.quotas if job.quotas is not None else self._quotas.get(job.tenant, _UNLIMITED)
        now = datetime.now(UTC)
        if job.idempotency_key and len(k.shards) > 1:
            prior = await self._idempotent_elsewhere(k, job)
            if prior is not None:
                return prior
        if quotas.limits_submit and len(k.shards) > 1:
            held = await submit_elsewhere(self._redis, k, job.tenant, usage_periods(now))
            quotas = held.lower(quotas)
        sealed = None
        if job.client_key is not None:
            sealed = self._client_keys.seal(job.client_key, job_id)
        args = EnqueueArgs(
            prefix=k.prefix,
            job_id=job_id,
            pool=job.pool,
            priority=job.priority,
            tenant=job.tenant,
            tenant_weight=job.tenant_weight,
            idempotency_digest=digest(job.idempotency_key) if job.idempotency_key else "",
            idempotency_ttl_s=self._idem_ttl_s,
            body_digest=digest(job.endpoint, job.body),
            body=job.body.decode(),
            submit_limits=submit_limits(quotas, now),
            fields=job.record_fields(sealed),
        )
        group = EnqueueGroup(EnqueueKeys.of(k, job.pool), k.prefix, job.pool)
        reply = await self._enqueues.submit(group, args)
        if not isinstance(reply, Accepted):
            raise refusal(reply, job.tenant, now)
        if reply.outcome is EnqueueOutcome.CONFLICT:
            raise IdempotencyConflictError(reply.job_id)
        return Enqueued(
            job_id=reply.job_id,
            created=reply.outcome is EnqueueOutcome.NEW,
            place=reply.place,
            created_ms=reply.created_ms,
            queued_in_pool=reply.queued_in_pool,
            mean_service_ms=reply.mean_service_ms,
            worker_slots=reply.worker_slots,
        )

    async def _idempotent_elsewhere(self, k: KeySpace, job: NewJob) -> Enqueued | None:
        """An idempotency key already used for a job on another shard (a route whose
        deployments span pools on several shards may place the repeat elsewhere): that job, or
        ``IdempotencyConflictError`` if its request differed. ``enqueue-2.lua`` checks the
        job's own shard atomically; two first uses racing on two shards are not caught
        (docs/scaling.md)."""
        assert job.idempotency_key is not None
        others = [s for s in k.shards if s != k.shard]
        prior = await self._idempotency_owner(job.tenant, job.idempotency_key, others)
        if prior is None:
            return None
        found = await awaited(self._redis.hget(self._k.for_job(prior).job(prior), "digest"))
        if found is not None and found != digest(job.endpoint, job.body):
            raise IdempotencyConflictError(prior)
        return Enqueued(job_id=prior, created=False, place=0)

    async def idempotent_job(self, tenant: str, idempotency_key: str) -> str | None:
        """The job an idempotency key already named for the tenant (as ``enqueue`` keeps it),
        or None."""
        return await self._idempotency_owner(tenant, idempotency_key, self._k.shards)

    async def _idempotency_owner(
        self, tenant: str, idempotency_key: str, shards: Sequence[str]
    ) -> str | None:
        """The job the key names on the first of ``shards`` that has it (a key is kept on the
        shard of its job's pool)."""
        key_digest = digest(idempotency_key)
        for shard in shards:
            key = self._k.on(shard).idempotency(tenant, key_digest)
            found: str | None = await awaited(self._redis.get(key))
            if found is not None:
                return found
        return None

    async def get(self, tenant: str, job_id: str) -> JobRecord | None:
        """The job, or None when it does not exist or belongs to another tenant."""
        h = await self._record(job_id)
        if not h or h.get("tenant") != tenant:
            return None
        return JobRecord.from_hash(job_id, h)

    async def get_woken(self, tenant: str, job_id: str) -> JobRecord | None:
        """``get`` for a waiter a job's event just woke: read with every other read of the same
        loop turn in one pipeline (``record_batch.py``)."""
        h = await self._batched.record(job_id)
        if not h or h.get("tenant") != tenant:
            return None
        return JobRecord.from_hash(job_id, h)

    async def locate(self, job_id: str) -> KeySpace:
        """The space of the shard that holds the job now: the one its id names, or the one it
        was handed off to (``handoff.py``; the named shard keeps a forwarding record)."""
        k = self._k.for_job(job_id)
        if len(self._k.shards) == 1:
            return k
        moved = await awaited(self._redis.hmget(k.job(job_id), ["status", "moved_to"]))
        return self._k.on(moved[1]) if moved[0] == MOVED and moved[1] is not None else k

    async def _record(self, job_id: str) -> dict[str, str]:
        h: dict[str, str] = await awaited(self._redis.hgetall(self._k.for_job(job_id).job(job_id)))
        return await self._followed(job_id, h)

    async def _followed(self, job_id: str, h: dict[str, str]) -> dict[str, str]:
        """``h``, or, when it is a forwarding record, the job's record on the shard it names."""
        if h.get("status") == MOVED and "moved_to" in h:
            moved: dict[str, str] = await awaited(
                self._redis.hgetall(self._k.on(h["moved_to"]).job(job_id))
            )
            return moved
        return h

    async def cancel(self, tenant: str, job_id: str, reason: str = DEFAULT_REASON) -> bool:
        """Cancel if still queued or running; False when the job is not the tenant's."""
        k = await self.locate(job_id)
        pool = await awaited(self._redis.hget(k.job(job_id), "pool"))
        if pool is None:
            return False
        done = await cancel(
            self._scripts,
            CancelKeys.of(k, job_id, pool),
            CancelArgs(k.prefix, job_id, tenant, self._ttl_s, reason),
        )
        return done.found

    async def list_jobs(
        self, tenant: str, *, status: JobStatus | None, limit: int, after: str | None
    ) -> tuple[list[JobRecord], bool]:
        """Newest first, OpenAI-style cursor pagination; ``has_more`` is exact. Each shard keeps
        the index of the jobs queued on it; the pages are merged by creation order."""
        upper = "+"
        if after:
            ix, owner = await awaited(
                self._redis.hmget(self._k.for_job(after).job(after), ["ix", "tenant"])
            )
            if ix is None or owner != tenant:
                return [], False
            upper = f"({ix}"
        found: list[JobRecord] = []
        page = max(limit * 2, 50)
        scanned = 0
        while len(found) <= limit and scanned < 5000:
            entries = await self._index_page(tenant, upper, page)
            if not entries:
                break
            scanned += len(entries)
            upper = f"({entries[-1][1]}"
            records = await self._records([fields["j"] for _, _, fields in entries])
            gone: dict[str, list[str]] = {}
            for (shard, eid, fields), h in zip(entries, records, strict=True):
                if not h:  # the job's record expired: its index entry goes too
                    gone.setdefault(shard, []).append(eid)
                    continue
                record = JobRecord.from_hash(fields["j"], h)
                if status is None or record.status is status:
                    found.append(record)
            for shard, ids in gone.items():
                await self._redis.xdel(self._k.on(shard).tenant_jobs(tenant), *ids)
        return found[:limit], len(found) > limit

    async def _index_page(
        self, tenant: str, upper: str, page: int
    ) -> list[tuple[str, str, dict[str, str]]]:
        """The next entries below ``upper`` of every shard's index, newest first, as (shard,
        entry id, fields). A shard that returned a full page bounds the merge: older entries of
        the others wait for the next page, so none is skipped."""
        merged: list[tuple[str, str, dict[str, str]]] = []
        floor: tuple[int, int] | None = None
        for shard in self._k.shards:
            index = self._k.on(shard).tenant_jobs(tenant)
            entries = await self._redis.xrevrange(index, max=upper, min="-", count=page)
            merged.extend((shard, eid, fields) for eid, fields in entries)
            if len(entries) == page:
                last = stream_id_key(entries[-1][0])
                floor = last if floor is None else max(floor, last)
        merged.sort(key=lambda e: stream_id_key(e[1]), reverse=True)
        if floor is not None:
            merged = [e for e in merged if stream_id_key(e[1]) >= floor]
        return merged

    async def _records(self, job_ids: list[str]) -> list[dict[str, str]]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hgetall(self._k.for_job(job_id).job(job_id))
            hashes: list[dict[str, str]] = await pipe.execute()
        return [await self._followed(job_id, h) for job_id, h in zip(job_ids, hashes, strict=True)]

    async def events_after(self, job_id: str, after: str | None) -> list[JobEvent]:
        """Replay the log after ``after`` (exclusive), from the implicit ``queued`` event (id
        ``0-1``, which the log never stores: writing it cost every job two commands).

        ``after`` is checked in full (``parse_stream_id`` raises ``ValueError``) and sent to
        Redis in its canonical spelling; nothing follows the largest id, which Redis would
        refuse as an exclusive start."""
        lo, key = "-", (0, 0)
        if after:
            key = parse_stream_id(after)
            if key == LAST_STREAM_ID:
                return []
            lo = f"({format_stream_id(key)}"
        k = await self.locate(job_id)
        entries = await self._redis.xrange(k.events(job_id), min=lo)
        events = [JobEvent.from_entry(eid, f) for eid, f in entries]
        if key < QUEUED_EVENT_ID and not (events and events[0].id == QUEUED_EVENT_ID_TEXT):
            # The scripts never write the implicit first event (``record`` in _lib.lua); a log
            # from before they stopped may still hold it, and then it is not added twice.
            queued = orjson.dumps({"id": job_id, "status": "queued"}).decode()
            events.insert(0, JobEvent(QUEUED_EVENT_ID_TEXT, "queued", queued))
        return events

    async def pool_stats(self, pool: str) -> dict[str, str]:
        stats: dict[str, str] = await awaited(self._redis.hgetall(self._k.stats(pool)))
        return stats
