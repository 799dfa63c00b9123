"""The job broker: every state change of a job is one Lua script call, so it is atomic.

The API enqueues, reads, lists and cancels; workers claim, stream events, finish, requeue and
heartbeat; any worker reclaims jobs whose lease lapsed. This class only maps Python values to
script keys and arguments and back: the decisions live in the scripts (atomicity) and their pure
Python twins in ``scheduling.py`` (testability).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.asyncio import Redis

from anygate.broker.claims import decode_claims
from anygate.broker.client_keys import ClientKeyBox
from anygate.broker.connection import awaited
from anygate.broker.deployment_health import HealthVerdict
from anygate.broker.ids import digest
from anygate.broker.keys import CLASS_ORDER, KeySpace
from anygate.broker.models import (
    ENDPOINT_CODES,
    LAST_STREAM_ID,
    ClaimedJob,
    Enqueued,
    JobEvent,
    JobRecord,
    JobStatus,
    NewJob,
    format_stream_id,
    parse_stream_id,
)
from anygate.broker.quotas import in_flight_caps, refusal, submit_limits, usage_periods
from anygate.broker.rate_window import Admission
from anygate.broker.redis_link import RedisLink
from anygate.broker.scripts import Scripts
from anygate.broker.worker_registry import RegistryValue, encode_registry_value
from anygate.config import AnygateConfig, TenantQuotas

_UNLIMITED = TenantQuotas()


def _usage_record(model: str, usage: dict[str, Any] | None) -> str:
    """``finish-4.lua``'s ARGV 11: the tokens to add to the tenant's usage, in today's UTC day
    and month (the finishing worker's clock; the day boundary is a matter of milliseconds)."""
    if not usage:
        return ""
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens")
    if not isinstance(prompt, int):
        prompt = 0
    if not isinstance(completion, int):
        total = usage.get("total_tokens")
        completion = total - prompt if isinstance(total, int) and total >= prompt else 0
    periods = usage_periods(datetime.now(UTC))
    return f"{periods.day}|{periods.month}|{prompt}|{completion}|{model}"


class IdempotencyConflictError(Exception):
    """The idempotency key was used before with a different request body."""

    def __init__(self, job_id: str) -> None:
        super().__init__("idempotency key reused with a different request body")
        self.job_id = job_id


class Broker:
    """``link``: a worker's broker waits out Redis outages in every call that is safe to
    repeat (see ``scripts.REPEATABLE``); without one, calls raise at once (the API's way)."""

    def __init__(
        self, redis: Redis, config: AnygateConfig, *, link: RedisLink | None = None
    ) -> None:
        self.redis = redis
        self.link = link
        self.keys = KeySpace(config.redis.namespace)
        self._scripts = Scripts(redis, link)
        self._queue = config.queue
        self._ttl_s = config.retention.result_ttl_s
        self._idem_ttl_s = config.retention.idempotency_ttl_s
        self._class_weights = [config.queue.weights.of(p) for p in CLASS_ORDER]
        self._quotas = {t.id: t.quotas for t in config.tenants}
        self._client_keys = ClientKeyBox.from_config(config.security)
        self.in_flight_caps = in_flight_caps(config.tenants)
        """What ``claim`` enforces; a worker keeps it current from the tenant store."""

    # --- API side -------------------------------------------------------------------------

    async def enqueue(self, job: NewJob, job_id: str) -> Enqueued:
        """Queue the job, or raise ``QueueFullError`` / ``InsufficientQuotaError`` when one of
        the tenant's limits refuses it (then nothing at all was written)."""
        k = self.keys
        quotas = job.quotas if job.quotas is not None else self._quotas.get(job.tenant, _UNLIMITED)
        now = datetime.now(UTC)
        limits = submit_limits(quotas, now)
        body_digest = digest(job.endpoint, job.body)
        idem = digest(job.idempotency_key) if job.idempotency_key else ""
        fields: list[str | int] = [
            "tenant", job.tenant,
            "pool", job.pool,
            "priority", job.priority.value,
            "endpoint", ENDPOINT_CODES[job.endpoint],
            "model", job.model,
        ]  # fmt: skip
        if job.stream:
            fields += ["stream", 1]
        if job.plan:
            fields += ["plan", job.plan, "step", 0]
        if job.reply_to:
            fields += ["reply_to", job.reply_to]
        if job.metadata:
            fields += ["metadata", orjson.dumps(job.metadata).decode()]
        if job.deadline_ms:
            fields += ["deadline_ms", job.deadline_ms]
        if job.webhook_url:
            fields += ["webhook_url", job.webhook_url]
        if job.batch_id:
            fields += ["batch", job.batch_id, "custom_id", job.custom_id]
        if job.keep_s:
            fields += ["keep_s", job.keep_s]
        if job.client_key is not None:
            fields += ["pk", self._client_keys.seal(job.client_key, job_id)]
        reply = await self._scripts.enqueue(
            [
                k.job(job_id),
                k.lane(job.pool, job.priority, job.tenant),
                k.ring(job.pool, job.priority),
                k.credits(job.pool, job.priority),
                k.stats(job.pool),
            ],
            [
                k.prefix, job_id, job.pool, job.priority.value, job.tenant, job.tenant_weight,
                idem, self._idem_ttl_s, body_digest, job.body.decode(), limits, *fields,
            ],
        )  # fmt: skip
        found_id, outcome = reply[0], reply[1]
        if outcome in {"queue_full", "insufficient_quota"}:
            raise refusal(reply, job.tenant, now)
        if outcome == "conflict":
            raise IdempotencyConflictError(found_id)
        return Enqueued(
            job_id=found_id,
            created=outcome == "new",
            place=int(reply[2]),
            created_ms=int(reply[3]),
            queued_in_pool=int(reply[4]),
            mean_service_ms=int(reply[5]) if reply[5] else None,
            worker_slots=int(reply[6]),
        )

    async def idempotent_job(self, tenant: str, idempotency_key: str) -> str | None:
        """The job an idempotency key already named for the tenant (as ``enqueue`` keeps it),
        or None."""
        key = self.keys.idempotency(tenant, digest(idempotency_key))
        found: str | None = await awaited(self.redis.get(key))
        return found

    async def get(self, tenant: str, job_id: str) -> JobRecord | None:
        """The job, or None when it does not exist or belongs to another tenant."""
        h = await awaited(self.redis.hgetall(self.keys.job(job_id)))
        if not h or h.get("tenant") != tenant:
            return None
        return JobRecord.from_hash(job_id, h)

    async def cancel(self, tenant: str, job_id: str, reason: str = "cancelled_by_user") -> bool:
        """Cancel if still queued or running; False when the job is not the tenant's."""
        pool = await awaited(self.redis.hget(self.keys.job(job_id), "pool"))
        if pool is None:
            return False
        k = self.keys
        before, _after = await self._scripts.cancel(
            [k.job(job_id), k.leases(pool), k.redeliver(pool), k.delayed(pool), k.stats(pool)],
            [k.prefix, job_id, tenant, self._ttl_s, reason],
        )
        return bool(before != "missing")

    async def list_jobs(
        self, tenant: str, *, status: JobStatus | None, limit: int, after: str | None
    ) -> tuple[list[JobRecord], bool]:
        """Newest first, OpenAI-style cursor pagination; ``has_more`` is exact."""
        index = self.keys.tenant_jobs(tenant)
        upper = "+"
        if after:
            ix, owner = await awaited(self.redis.hmget(self.keys.job(after), ["ix", "tenant"]))
            if ix is None or owner != tenant:
                return [], False
            upper = f"({ix}"
        found: list[JobRecord] = []
        page = max(limit * 2, 50)
        scanned = 0
        while len(found) <= limit and scanned < 5000:
            entries = await self.redis.xrevrange(index, max=upper, min="-", count=page)
            if not entries:
                break
            scanned += len(entries)
            upper = f"({entries[-1][0]}"
            async with self.redis.pipeline(transaction=False) as pipe:
                for _eid, fields in entries:
                    pipe.hgetall(self.keys.job(fields["j"]))
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
                await self.redis.xdel(index, *gone)
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
        entries = await self.redis.xrange(self.keys.events(job_id), min=lo)
        if not entries and after is None:
            return [
                JobEvent("0-1", "queued", orjson.dumps({"id": job_id, "status": "queued"}).decode())
            ]
        return [JobEvent.from_entry(eid, f) for eid, f in entries]

    async def pool_stats(self, pool: str) -> dict[str, str]:
        stats: dict[str, str] = await awaited(self.redis.hgetall(self.keys.stats(pool)))
        return stats

    # --- worker side ----------------------------------------------------------------------

    async def claim(
        self, pool: str, worker_id: str, max_jobs: int, token: str = ""
    ) -> list[ClaimedJob]:
        """Claim up to ``max_jobs``. ``token``: a claim whose reply was lost is repeated with
        the same token, and answers with the jobs the first call took (``claim-12.lua``)."""
        k = self.keys
        keys = [k.ring(pool, p) for p in CLASS_ORDER]
        keys += [k.credits(pool, p) for p in CLASS_ORDER]
        keys += [
            k.wrr(pool), k.redeliver(pool), k.delayed(pool), k.leases(pool), k.stats(pool),
            k.tenant_weights(pool),
        ]  # fmt: skip
        lease_ms = int(self._queue.visibility_timeout_s * 1000)
        flat: list[Any] = await self._scripts.claim(
            keys,
            [
                k.prefix, pool, worker_id, lease_ms, max_jobs, *self._class_weights, self._ttl_s,
                self.in_flight_caps, token,
            ],
        )  # fmt: skip
        return decode_claims(flat)

    def client_key(self, job: ClaimedJob) -> str | None:
        """The client's provider key for this job's calls (BYOK), or None: the gateway's."""
        return self._client_keys.open(job.client_key, job.id) if job.client_key else None

    async def append(self, job: ClaimedJob, etype: str, *data: bytes | str, first_seq: int) -> bool:
        """Append events, in order, in one call; False means this attempt no longer owns the
        job: stop working on it. ``first_seq``: the first event's number in this attempt (the
        attempt's first event is 1), which makes a repeated call append nothing twice."""
        k = self.keys
        reply = await self._scripts.append(
            [k.job(job.id), k.events(job.id)],
            [k.prefix, job.id, job.attempt, etype, first_seq, *data],
        )
        return reply is not None and reply is not False

    async def finish(
        self,
        job: ClaimedJob,
        pool: str,
        *,
        succeeded: bool,
        result: Any = None,
        error: dict[str, Any] | None = None,
        usage: dict[str, Any] | None = None,
        cost_usd: float | None = None,
        history_entry: dict[str, Any] | None = None,
    ) -> bool:
        """Record the outcome, and a success's usage in the tenant's day and month; False when
        another attempt (or a cancel) got there first."""
        k = self.keys
        status = "succeeded" if succeeded else "failed"
        dumps = orjson.dumps
        reply = await self._scripts.finish(
            [k.job(job.id), k.leases(pool), k.stats(pool), k.dead(pool)],
            [
                k.prefix, job.id, job.attempt, status,
                dumps(result).decode() if result is not None else "",
                dumps(error).decode() if error is not None else "",
                dumps(usage).decode() if usage is not None else "",
                "" if cost_usd is None else repr(cost_usd),
                self._ttl_s,
                dumps(history_entry).decode() if history_entry else "",
                _usage_record(job.model, usage) if succeeded else "",
            ],
        )  # fmt: skip
        return bool(reply == 1)

    async def requeue(
        self,
        job: ClaimedJob,
        pool: str,
        *,
        delay_s: float,
        reason: str,
        refund_attempt: bool,
        to_pool: str | None = None,
        to_step: int | None = None,
        history_entry: dict[str, Any] | None = None,
        next_model: str | None = None,
    ) -> bool:
        """Back to a queue: this pool's, or ``to_pool`` when the route falls back elsewhere."""
        k = self.keys
        target = to_pool or pool
        extra = f',"model":{orjson.dumps(next_model).decode()}' if next_model else ""
        reply = await self._scripts.requeue(
            [
                k.job(job.id), k.leases(pool), k.stats(pool),
                k.redeliver(target), k.delayed(target), k.stats(target),
            ],
            [
                k.prefix, job.id, job.attempt, int(delay_s * 1000), reason, int(refund_attempt),
                target, job.step if to_step is None else to_step,
                orjson.dumps(history_entry).decode() if history_entry else "", extra,
            ],
        )  # fmt: skip
        return bool(reply == 1)

    async def heartbeat(
        self,
        pool: str,
        worker_id: str,
        registry: RegistryValue,
        jobs: Sequence[tuple[str, int]],
    ) -> list[str]:
        """Extend leases; returns the ids this worker no longer owns."""
        k = self.keys
        args: list[str | int] = [
            k.prefix, worker_id, int(self._queue.visibility_timeout_s * 1000),
            encode_registry_value(registry),
        ]  # fmt: skip
        for job_id, attempt in jobs:
            args += [job_id, attempt]
        lost: list[str] = await self._scripts.heartbeat([k.leases(pool), k.workers(pool)], args)
        return lost

    async def reclaim(self, pool: str, limit: int = 100) -> int:
        """Redeliver jobs whose lease lapsed; the count, or -1 while the grace after a Redis
        outage lasts (no lease lapses while Redis itself was away: ``reclaim-5.lua``)."""
        k = self.keys
        q = self._queue
        lease_ms = int(q.visibility_timeout_s * 1000)
        # Reclaim runs every reclaim_interval_s in every worker, and every second in the
        # control plane: a gap much longer than that (and than a heartbeat's period) means
        # Redis, not the processes, was away.
        stall_ms = int(max(3 * q.reclaim_interval_s, 2 * q.heartbeat_interval_s, 3.0) * 1000)
        count = await self._scripts.reclaim(
            [k.leases(pool), k.redeliver(pool), k.stats(pool), k.dead(pool), k.workers(pool)],
            [k.prefix, q.max_attempts, limit, self._ttl_s, pool, 4 * lease_ms, stall_ms, lease_ms],
        )
        return int(count)

    # --- rate limits (SPEC §2; the model: rate_window.py) ----------------------------------

    async def take_rate(
        self,
        limit_name: str,
        window_ms: int,
        limit: int,
        entry_id: str,
        cost: int,
        *,
        now_ms: int | None = None,
    ) -> Admission:
        """Admit ``cost`` against a shared sliding window, or say when it could be. Entry ids
        must be unique within a window (a job id and its attempt). ``now_ms`` is for tests;
        otherwise Redis's clock decides, the same for every worker."""
        k = self.keys
        admitted, retry_after_ms = await self._scripts.ratewindow(
            [k.rate_log(limit_name), k.rate_sum(limit_name)],
            ["take", window_ms, limit, entry_id, cost, "" if now_ms is None else now_ms],
        )
        return Admission(admitted == 1, int(retry_after_ms))

    async def settle_rate(
        self,
        limit_name: str,
        window_ms: int,
        entry_id: str,
        actual_cost: int,
        *,
        now_ms: int | None = None,
    ) -> bool:
        """Replace an admitted estimate by the real cost; False once the entry has expired."""
        k = self.keys
        found = await self._scripts.ratewindow(
            [k.rate_log(limit_name), k.rate_sum(limit_name)],
            ["settle", window_ms, 0, entry_id, actual_cost, "" if now_ms is None else now_ms],
        )
        return bool(found == 1)

    # --- deployment health (SPEC §2; the local view: deployment_health.py) ------------------

    async def _health(self, deployment: str, op: str, *args: str | int | float) -> Any:
        k = self.keys
        return await self._scripts.health(
            [k.deployment_health(deployment)], [k.prefix, deployment, op, *args]
        )

    async def cool_down(self, deployment: str, seconds: float) -> None:
        """Pause calls to the deployment (an upstream 429), for every worker."""
        await self._health(deployment, "cool", max(1, int(seconds * 1000)))

    async def probe(self, deployment: str, probe_id: str) -> HealthVerdict:
        """May a call go ahead? See ``health-1.lua``'s ``probe``: ``ok``, ``steady``, ``probe``
        (this call is the one test call after a pause), ``open``, ``cool`` or ``wait``, with
        the milliseconds a pause has left (and for ``wait``, the spread to ask again in)."""
        q = self._queue
        ttl_ms = int(q.visibility_timeout_s * 1000)
        reply = await self._health(
            deployment, "probe", probe_id, ttl_ms, int(q.resume_ramp_s * 1000)
        )
        spread = int(reply[2]) if len(reply) > 2 else 0
        return HealthVerdict(str(reply[0]), int(reply[1]), spread)

    async def report_success(self, deployment: str, probe_id: str) -> str:
        window_ms = int(self._queue.breaker.window_s * 1000)
        return str(await self._health(deployment, "success", probe_id, window_ms))

    async def report_failure(self, deployment: str, probe_id: str) -> str:
        """Count a transient failure; returns the breaker's state after it (``open`` when
        this failure opened it)."""
        b = self._queue.breaker
        args = (b.consecutive_failures, b.error_rate, b.min_calls, int(b.window_s * 1000))
        state = await self._health(deployment, "failure", probe_id, *args, int(b.cooldown_s * 1000))
        return str(state)

    async def peek_health(self, deployment: str) -> list[str | int]:
        reply: list[str | int] = await self._health(deployment, "peek")
        return reply

    async def unregister_worker(self, pool: str, worker_id: str) -> None:
        await awaited(self.redis.hdel(self.keys.workers(pool), worker_id))
