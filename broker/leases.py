"""The workers' side of the job queue: claim jobs, stream their events, finish or requeue them,
keep their leases alive, and reclaim the leases that lapsed.

Each call is one script (``script_calls``). With a ``RedisLink`` every script that is safe to
repeat waits out a Redis outage (``scripts.REPEATABLE``); a claim is repeated with its token.
A claim records its jobs' queue wait, a finish the job's whole duration (docs/metrics.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from anygate.broker import job_timing
from anygate.broker.client_keys import ClientKeyBox
from anygate.broker.coalescer import Coalescer
from anygate.broker.handoff import HandOff, HandOffRequest
from anygate.broker.job_log import JobLog
from anygate.broker.keys import CLASS_ORDER, KeySpace
from anygate.broker.models import ClaimedJob
from anygate.broker.quotas import in_flight_caps
from anygate.broker.script_calls.append import AppendArgs, AppendKeys, append
from anygate.broker.script_calls.claim import ClaimArgs, ClaimKeys, claim
from anygate.broker.script_calls.finish import (
    FinishArgs,
    FinishGroup,
    FinishKeys,
    finish_many,
    json_arg,
)
from anygate.broker.script_calls.heartbeat import HeartbeatArgs, HeartbeatKeys, heartbeat
from anygate.broker.script_calls.reclaim import ReclaimArgs, ReclaimKeys, reclaim
from anygate.broker.script_calls.requeue import RequeueArgs, RequeueKeys, encode_model, requeue
from anygate.broker.scripts import Scripts
from anygate.broker.worker_registry import RegistryValue
from anygate.config import AnygateConfig


class Leases:
    def __init__(
        self, scripts: Scripts, keys: KeySpace, config: AnygateConfig, handoff: HandOff
    ) -> None:
        self._handoff = handoff
        self._scripts = scripts
        self._k = keys
        self._queue = config.queue
        self._ttl_s = config.retention.result_ttl_s
        weights = [config.queue.weights.of(p) for p in CLASS_ORDER]
        self._class_weights = (weights[0], weights[1], weights[2])
        self._client_keys = ClientKeyBox.from_config(config.security)
        self.log = JobLog(config)
        """One line per state change this process makes (``job_log.py``)."""
        self.in_flight_caps = in_flight_caps(config.tenants)
        """What ``claim`` enforces; a worker keeps it current from the tenant store."""
        self._finishes: Coalescer[FinishGroup, FinishArgs, bool] = Coalescer(self._finish_many)
        """The finishes of one event-loop turn, one script call per pool (``finish-5.lua``)."""

    async def _finish_many(
        self, group: FinishGroup, jobs: Sequence[FinishArgs]
    ) -> list[bool | BaseException]:
        return await finish_many(self._scripts, group, jobs)

    @property
    def _lease_ms(self) -> int:
        return int(self._queue.visibility_timeout_s * 1000)

    async def claim(
        self, pool: str, worker_id: str, max_jobs: int, token: str = ""
    ) -> list[ClaimedJob]:
        """Claim up to ``max_jobs``. ``token``: a claim whose reply was lost is repeated with
        the same token, and answers with the jobs the first call took (``claim-13.lua``)."""
        k = self._k.for_pool(pool)
        args = ClaimArgs(
            prefix=k.prefix,
            pool=pool,
            worker_id=worker_id,
            lease_ms=self._lease_ms,
            max_jobs=max_jobs,
            class_weights=self._class_weights,
            ttl_s=self._ttl_s,
            in_flight_caps=self.in_flight_caps,
            token=token,
        )
        jobs = await claim(self._scripts, ClaimKeys.of(k, pool), args)
        if k.shard:
            jobs = [dataclasses.replace(job, shard=k.shard) for job in jobs]
        self.log.started(jobs, pool, worker_id)
        job_timing.claimed(jobs, pool)
        return jobs

    def client_key(self, job: ClaimedJob) -> str | None:
        """The client's provider key for this job's calls (BYOK), or None: the gateway's."""
        return self._client_keys.open(job.client_key, job.id) if job.client_key else None

    async def append(self, job: ClaimedJob, etype: str, *data: bytes | str, first_seq: int) -> bool:
        """Append events, in order, in one call; False means this attempt no longer owns the
        job: stop working on it. ``first_seq``: the first event's number in this attempt (the
        attempt's first event is 1), which makes a repeated call append nothing twice."""
        k = self._k.on(job.shard)
        args = AppendArgs(k.prefix, job.id, job.attempt, etype, first_seq, data)
        return await append(self._scripts, AppendKeys.of(k, job.id), args) is not None

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
        k = self._k.on(job.shard)
        args = FinishArgs.outcome(
            k.prefix,
            job.id,
            job.attempt,
            model=job.model,
            ttl_s=self._ttl_s,
            succeeded=succeeded,
            result=result,
            error=error,
            usage=usage,
            cost_usd=cost_usd,
            history_entry=history_entry,
        )
        group = FinishGroup(FinishKeys.of(k, pool), k.prefix, self._ttl_s)
        recorded = await self._finishes.submit(group, args)
        self.log.finished(
            job, pool, recorded=recorded, succeeded=succeeded, error=error, cost_usd=cost_usd
        )
        job_timing.finished(job, pool, recorded=recorded, succeeded=succeeded)
        return recorded

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
        target = to_pool or pool
        k = self._k.on(job.shard)
        if self._k.shard_of_pool(target) != k.shard:  # a pool on another shard: hand it off
            request = HandOffRequest(
                pool=pool,
                target_pool=target,
                target_step=job.step if to_step is None else to_step,
                reason=reason,
                refund_attempt=refund_attempt,
                delay_ms=int(delay_s * 1000),
                history_json=json_arg(history_entry) if history_entry else "",
                next_model_json=encode_model(next_model),
            )
            recorded = await self._handoff.send(job, request)
        else:
            args = RequeueArgs(
                prefix=k.prefix,
                job_id=job.id,
                attempt=job.attempt,
                delay_ms=int(delay_s * 1000),
                reason=reason,
                refund_attempt=refund_attempt,
                target_pool=target,
                target_step=job.step if to_step is None else to_step,
                history_json=json_arg(history_entry) if history_entry else "",
                next_model=next_model,
            )
            keys = RequeueKeys.of(k, job.id, pool, target)
            recorded = await requeue(self._scripts, keys, args)
        self.log.requeued(
            job,
            pool,
            recorded=recorded,
            reason=reason,
            refund_attempt=refund_attempt,
            delay_s=delay_s,
            to_step=to_step,
        )
        return recorded

    async def heartbeat(
        self,
        pool: str,
        worker_id: str,
        registry: RegistryValue,
        jobs: Sequence[tuple[str, int]],
    ) -> list[str]:
        """Extend leases and publish the worker's registry value; returns the ids this worker
        no longer owns."""
        k = self._k.for_pool(pool)
        args = HeartbeatArgs(k.prefix, worker_id, self._lease_ms, registry, jobs)
        return await heartbeat(self._scripts, HeartbeatKeys.of(k, pool), args)

    async def reclaim(self, pool: str, limit: int = 100) -> int:
        """Redeliver jobs whose lease lapsed; the count, or ``IN_GRACE`` (-1) while the grace
        after a Redis outage lasts (no lease lapses while Redis itself was away:
        ``reclaim-6.lua``)."""
        q = self._queue
        lease_ms = self._lease_ms
        # Reclaim runs every reclaim_interval_s in every worker, and every second in the
        # control plane: a gap much longer than that (and than a heartbeat's period) means
        # Redis, not the processes, was away.
        stall_ms = int(max(3 * q.reclaim_interval_s, 2 * q.heartbeat_interval_s, 3.0) * 1000)
        k = self._k.for_pool(pool)
        args = ReclaimArgs(
            prefix=k.prefix,
            max_lost=q.max_attempts,
            limit=limit,
            ttl_s=self._ttl_s,
            pool=pool,
            worker_expiry_ms=4 * lease_ms,
            stall_ms=stall_ms,
            lease_ms=lease_ms,
        )
        count = await reclaim(self._scripts, ReclaimKeys.of(k, pool), args)
        if len(k.shards) > 1:
            await self._handoff.sweep(k.shard)
        return count
