"""The API's side of the job queue: enqueue, read, list, replay and cancel jobs.

Every change of a job's state is one Lua script call (``script_calls``), so it is atomic; this
class maps Python values to the scripts' typed keys and arguments, and reads what needs no
script (a job's record, its event log, the tenant's index).
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from redis.asyncio import Redis

from anygate.broker.client_keys import ClientKeyBox
from anygate.broker.connection import awaited
from anygate.broker.errors import IdempotencyConflictError
from anygate.broker.ids import digest
from anygate.broker.keys import KeySpace
from anygate.broker.models import (
    LAST_STREAM_ID,
    Enqueued,
    JobEvent,
    JobRecord,
    JobStatus,
    NewJob,
    format_stream_id,
    parse_stream_id,
)
from anygate.broker.quotas import refusal, submit_limits
from anygate.broker.script_calls.cancel import DEFAULT_REASON, CancelArgs, CancelKeys, cancel
from anygate.broker.script_calls.enqueue import (
    Accepted,
    EnqueueArgs,
    EnqueueKeys,
    EnqueueOutcome,
    enqueue,
)
from anygate.broker.scripts import Scripts
from anygate.config import AnygateConfig, TenantQuotas

_UNLIMITED = TenantQuotas()


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

    async def enqueue(self, job: NewJob, job_id: str) -> Enqueued:
        """Queue the job, or raise ``QueueFullError`` / ``InsufficientQuotaError`` when one of
        the tenant's limits refuses it (then nothing at all was written)."""
        k = self._k
        quotas = job.quotas if job.quotas is not None else self._quotas.get(job.tenant, _UNLIMITED)
        now = datetime.now(UTC)
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
        keys = EnqueueKeys.of(k, job_id, job.pool, job.priority, job.tenant)
        reply = await enqueue(self._scripts, keys, args)
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

    async def idempotent_job(self, tenant: str, idempotency_key: str) -> str | None:
        """The job an idempotency key already named for the tenant (as ``enqueue`` keeps it),
        or None."""
        key = self._k.idempotency(tenant, digest(idempotency_key))
        found: str | None = await awaited(self._redis.get(key))
        return found

    async def get(self, tenant: str, job_id: str) -> JobRecord | None:
        """The job, or None when it does not exist or belongs to another tenant."""
        h = await awaited(self._redis.hgetall(self._k.job(job_id)))
        if not h or h.get("tenant") != tenant:
            return None
        return JobRecord.from_hash(job_id, h)

    async def cancel(self, tenant: str, job_id: str, reason: str = DEFAULT_REASON) -> bool:
        """Cancel if still queued or running; False when the job is not the tenant's."""
        pool = await awaited(self._redis.hget(self._k.job(job_id), "pool"))
        if pool is None:
            return False
        k = self._k
        done = await cancel(
            self._scripts,
            CancelKeys.of(k, job_id, pool),
            CancelArgs(k.prefix, job_id, tenant, self._ttl_s, reason),
        )
        return done.found

    async def list_jobs(
        self, tenant: str, *, status: JobStatus | None, limit: int, after: str | None
    ) -> tuple[list[JobRecord], bool]:
        """Newest first, OpenAI-style cursor pagination; ``has_more`` is exact."""
        index = self._k.tenant_jobs(tenant)
        upper = "+"
        if after:
            ix, owner = await awaited(self._redis.hmget(self._k.job(after), ["ix", "tenant"]))
            if ix is None or owner != tenant:
                return [], False
            upper = f"({ix}"
        found: list[JobRecord] = []
        page = max(limit * 2, 50)
        scanned = 0
        while len(found) <= limit and scanned < 5000:
            entries = await self._redis.xrevrange(index, max=upper, min="-", count=page)
            if not entries:
                break
            scanned += len(entries)
            upper = f"({entries[-1][0]}"
            async with self._redis.pipeline(transaction=False) as pipe:
                for _eid, fields in entries:
                    pipe.hgetall(self._k.job(fields["j"]))
                hashes: list[dict[str, str]] = await pipe.execute()
            gone = []
            for (eid, fields), h in zip(entries, hashes, strict=True):
                if not h:
                    gone.append(eid)  # the job's record expired: its index entry goes too
                    continue
                record = JobRecord.from_hash(fields["j"], h)
                if status is None or record.status is status:
                    found.append(record)
            if gone:
                await self._redis.xdel(index, *gone)
        return found[:limit], len(found) > limit

    async def events_after(self, job_id: str, after: str | None) -> list[JobEvent]:
        """Replay the log after ``after`` (exclusive); a queued job has only its implicit event.

        ``after`` is checked in full (``parse_stream_id`` raises ``ValueError``) and sent to
        Redis in its canonical spelling; nothing follows the largest id, which Redis would
        refuse as an exclusive start."""
        lo = "-"
        if after:
            key = parse_stream_id(after)
            if key == LAST_STREAM_ID:
                return []
            lo = f"({format_stream_id(key)}"
        entries = await self._redis.xrange(self._k.events(job_id), min=lo)
        if not entries and after is None:
            return [
                JobEvent("0-1", "queued", orjson.dumps({"id": job_id, "status": "queued"}).decode())
            ]
        return [JobEvent.from_entry(eid, f) for eid, f in entries]

    async def pool_stats(self, pool: str) -> dict[str, str]:
        stats: dict[str, str] = await awaited(self._redis.hgetall(self._k.stats(pool)))
        return stats
