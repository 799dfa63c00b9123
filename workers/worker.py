"""A worker of one provider pool: claims jobs only when it has a free slot, runs each as a task.

Life of a job inside a worker: claimed (lease starts) → upstream call, each streamed chunk
appended to the job's log as it arrives → finished, requeued (transient error, rate limit) or
abandoned (cancelled, lease lost). Heartbeats extend the leases of running jobs; a worker that
dies stops heartbeating and any worker's reclaim pass redelivers its jobs.

Shutdown (SIGTERM): stop claiming, let running jobs finish for ``shutdown_grace_s``, then abort
the rest and hand them back to the front of the queue, so nothing is lost and nothing waits for a
lease to lapse.

Redis going away is never a job's fault: the worker's broker waits out an outage in every write
on a job's path (``broker/transient.py``), upstream calls in progress go on, and each job
finishes once Redis is back. A claim whose reply was lost is repeated with the same token, so
the jobs it took are not orphaned.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass

import structlog
from redis.exceptions import RedisError

from anygate.broker import Broker, ClaimedJob, Subscriptions
from anygate.broker.client_keys import ClientKeyError
from anygate.broker.deployment_health import HealthView
from anygate.broker.errors import (
    AnygateError,
    ModelNotFoundError,
    UpstreamError,
)
from anygate.broker.redis_link import RedisLink, is_outage
from anygate.broker.routing import (
    Step,
    decode_plan,
    deployment_for,
    step_from_wire,
)
from anygate.broker.script_calls.cancel import WorkerControl
from anygate.broker.worker_registry import RegistryValue
from anygate.config import AnygateConfig
from anygate.telemetry import (
    count_redis_error,
    observe_redis_roundtrip,
    tracing,
    worker_slots,
)
from anygate.workers.adapters.base import JobLostError, ProviderAdapter
from anygate.workers.chunk_relay import ChunkRelay
from anygate.workers.deployment_guard import DeploymentGuard
from anygate.workers.deployment_usage import DeploymentUsage
from anygate.workers.disposition import JobDisposition
from anygate.workers.pricing import cost_usd
from anygate.workers.rate_gate import RateGate
from anygate.workers.tenant_view import TenantView
from anygate.workers.upstream_call import AdapterFaultError, UpstreamCall

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    pool: str
    worker_id: str
    concurrency: int
    shutdown_grace_s: float = 30.0
    idle_poll_s: float = 0.25
    """Upper bound on how late a delayed retry is picked up; new work wakes workers at once."""
    claim_batch: int = 32
    """Most jobs one claim script takes: a worker with 1,000 free slots must not hold Redis
    (and every API process's submits) for one long script; it claims again at once."""
    handback_s: float = 5.0
    """How long a stopping worker tries to hand unfinished jobs back (Redis may be away: then
    their leases lapse and another worker's reclaim redelivers them)."""


class Worker:
    def __init__(
        self,
        config: AnygateConfig,
        settings: WorkerSettings,
        broker: Broker,
        subscriptions: Subscriptions,
        adapter: ProviderAdapter,
    ) -> None:
        self._config = config
        self._s = settings
        self._broker = broker
        self._subs = subscriptions
        self._adapter = adapter
        self._upstream = UpstreamCall(adapter, config, settings.pool)
        self._running: dict[str, tuple[asyncio.Task[None], ClaimedJob]] = {}
        self._slots: set[str] = set()
        """Jobs holding a slot: running minus those whose upstream work is over and whose
        outcome is being recorded (the freed slot's claim then shares that write)."""
        self._wake = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._abandoned: set[str] = set()
        self._usage = DeploymentUsage()
        self._slots_gauge, self._busy_gauge = worker_slots(settings.pool)
        self._slots_gauge.set(settings.concurrency)
        self._gate = RateGate(broker, config.queue, config.tenants)
        self._tenants = TenantView(broker.tenants, broker, self._gate, settings.pool)
        self._guard = DeploymentGuard(broker, HealthView(), config.queue.breaker)
        self._disposition = JobDisposition(
            broker, settings.pool, config.queue, self._guard, self._gate
        )
        self._pool_steps = [
            Step(alias, dep)
            for alias, route in config.models.items()
            for dep in route.deployments
            if dep.provider == settings.pool
        ]

    @property
    def in_flight(self) -> int:
        return len(self._running)

    def stop(self) -> None:
        """Stop claiming; ``run`` then drains and returns."""
        self._stopping.set()
        self._wake.set()
        self._slot_freed.set()

    async def run(self) -> None:
        k = self._broker.keys
        await self._subs.listen(k.wake_channel(self._s.pool), lambda _m: self._wake.set())
        await self._subs.listen(k.worker_channel(self._s.worker_id), self._obey)
        await self._subs.listen(k.health_channel, self._guard.view.apply)
        await self._subs.listen(k.auth_channel, self._tenants.changed)
        helpers = [
            asyncio.create_task(self._heartbeat_forever(), name="heartbeat"),
            asyncio.create_task(self._reclaim_forever(), name="reclaim"),
        ]
        try:
            with contextlib.suppress(RedisError, OSError):  # Redis away: the next beat registers
                await self._heartbeat_once()
            await self._claim_forever()
            await self._drain()
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            with contextlib.suppress(RedisError, OSError):
                await self._broker.unregister_worker(self._s.pool, self._s.worker_id)

    # --- claiming -------------------------------------------------------------------------

    async def _claim_forever(self) -> None:
        link = self._broker.link or RedisLink(f"worker {self._s.worker_id}")
        backoff = 0.05
        token = secrets.token_hex(8)
        while not self._stopping.is_set():
            free = self._s.concurrency - len(self._slots)
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            self._wake.clear()
            free = min(free, self._s.claim_batch)
            try:
                if self._tenants.stale:
                    await self._tenants.refresh()
                jobs = await self._broker.claim(self._s.pool, self._s.worker_id, free, token)
            except (RedisError, OSError) as exc:
                if not is_outage(exc):
                    raise
                # The claim may have run and its reply been lost: the next try repeats it with
                # the same token and gets those jobs, never orphans them.
                link.lost(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            link.back()
            backoff = 0.05
            token = secrets.token_hex(8)
            for job in jobs:
                task = asyncio.create_task(self._process(job), name=job.id)
                self._running[job.id] = (task, job)
                self._slots.add(job.id)
                task.add_done_callback(self._release)
            self._busy_gauge.set(len(self._slots))
            if len(jobs) < free:
                # The queue ran dry: sleep until new work is announced (a wake that arrived
                # while claiming was not cleared, so nothing is missed) or the idle poll is due.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._s.idle_poll_s)

    def _release(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task.get_name(), None)
        self._free_slot(task.get_name())

    def _free_slot(self, job_id: str) -> None:
        if job_id in self._slots:
            self._slots.discard(job_id)
            self._busy_gauge.set(len(self._slots))
            self._slot_freed.set()

    def _obey(self, message: str) -> None:
        """Control messages: ``cancel <job id>`` when the job's owner cancelled it."""
        verb, _, job_id = message.partition(" ")
        if verb == WorkerControl.CANCEL:
            self._abandon(job_id, reason="cancelled")

    def _abandon(self, job_id: str, *, reason: str) -> None:
        entry = self._running.get(job_id)
        if entry is not None:
            self._broker.leases.log.abandoned(entry[1], self._s.pool, reason)
            self._abandoned.add(job_id)
            entry[0].cancel()

    # --- leases ---------------------------------------------------------------------------

    async def _heartbeat_once(self) -> None:
        registry = RegistryValue(
            int(time.time() * 1000), self._s.concurrency, len(self._running), self._usage.snapshot()
        )
        owned = [(jid, job.attempt) for jid, (_t, job) in self._running.items()]
        started = time.perf_counter()
        lost = await self._broker.heartbeat(self._s.pool, self._s.worker_id, registry, owned)
        observe_redis_roundtrip(time.perf_counter() - started)
        for job_id in lost:
            self._abandon(job_id, reason="lease lost")
        await self._guard.refresh(self._pool_steps)
        self._tenants.changed()  # the next claim reloads them: a missed announcement heals

    async def _heartbeat_forever(self) -> None:
        while True:
            await asyncio.sleep(self._config.queue.heartbeat_interval_s)
            try:
                await self._heartbeat_once()
            except (RedisError, OSError) as exc:  # a bug, or the peek of a refresh
                count_redis_error(exc)
                log.warning("heartbeat failed", error=f"{type(exc).__name__}: {exc}")

    async def _reclaim_forever(self) -> None:
        in_grace = False
        while True:
            await asyncio.sleep(self._config.queue.reclaim_interval_s)
            try:
                count = await self._broker.reclaim(self._s.pool)
            except (RedisError, OSError) as exc:
                count_redis_error(exc)
                log.warning("reclaim failed", error=f"{type(exc).__name__}: {exc}")
                continue
            if count < 0 and not in_grace:
                log.info("redis was away: leases get a grace period before any is reclaimed")
            in_grace = count < 0
            if count > 0:
                log.info("reclaimed jobs with lapsed leases", count=count)

    # --- running one job ------------------------------------------------------------------

    def _steps(self, job: ClaimedJob) -> list[Step | None]:
        """The job's route; a job queued without a plan is served by its pool's deployment."""
        if job.plan:
            return [step_from_wire(self._config, wire) for wire in decode_plan(job.plan)]
        dep = deployment_for(self._config, job.model, self._s.pool)
        return [Step(job.model, dep) if dep is not None else None]

    async def _process(self, job: ClaimedJob) -> None:
        """Run one job; whatever happens, nothing escapes the task unlogged. A failure here that
        is not the provider's leaves the job to its lease: it is redelivered, not failed."""
        attempt = self._attempt_span(job) if tracing.enabled else tracing.NULL
        try:
            with attempt:
                await self._run(job)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "job aborted by an internal error; its lease will redeliver it",
                job_id=job.id,
                attempt=job.attempt,
            )

    async def _run(self, job: ClaimedJob) -> None:
        pool = self._s.pool
        steps = self._steps(job)
        step = steps[job.step] if job.step < len(steps) else None
        if step is None or step.provider != pool:
            error = ModelNotFoundError(
                f"model {job.model!r} has no deployment for step {job.step} in pool {pool!r} "
                "(configuration changed?)"
            )
            await self._broker.finish(job, pool, succeeded=False, error=error.to_job_error())
            return

        try:
            client_key = self._broker.client_key(job)
        except ClientKeyError as exc:
            unreadable = AnygateError(str(exc), code="client_key_unreadable")
            await self._broker.finish(job, pool, succeeded=False, error=unreadable.to_job_error())
            return
        with tracing.spans.rate_limit() if tracing.enabled else tracing.NULL:
            granted = await self._disposition.clearance(job, steps, step)
        if granted is None:
            return
        relay = ChunkRelay(self._broker, job)
        usage = self._usage.track(step)
        try:
            outcome = await self._upstream.call(job, step, relay, client_key)
            await relay.flush()
        except asyncio.CancelledError:
            relay.abandon()
            usage.done(ok=False)
            if job.id in self._abandoned:
                self._abandoned.discard(job.id)
                return  # cancelled or reclaimed: the broker already holds the job's truth
            raise  # shutdown: _drain hands the job back
        except JobLostError:
            relay.abandon()
            usage.done(ok=False)
            return
        except UpstreamError as exc:
            usage.done(ok=False)
            self._free_slot(job.id)
            await relay.settle()  # the chunks that came before the failure, then its event
            if relay.lost:
                return
            ours = isinstance(exc, AdapterFaultError)
            await self._disposition.after_failure(job, steps, step, exc, granted, ours=ours)
            return
        usage.done(ok=True)
        self._free_slot(job.id)
        await self._broker.finish(
            job,
            pool,
            succeeded=True,
            result=outcome.result,
            usage=outcome.usage,
            cost_usd=cost_usd(outcome.usage, step.deployment),
        )
        await self._gate.settle(job, step, outcome.usage)
        if not job.client_key:
            await self._guard.succeeded(job, step, granted)

    def _attempt_span(self, job: ClaimedJob) -> contextlib.AbstractContextManager[None]:
        """This attempt's span, in the trace the job carries (docs/tracing.md)."""
        return tracing.spans.attempt(
            job.trace,
            job_id=job.id,
            attempt=job.attempt,
            pool=self._s.pool,
            worker_id=self._s.worker_id,
            claimed_ns=time.time_ns(),
        )

    async def _drain(self) -> None:
        if self._running:
            log.info("draining", in_flight=len(self._running), grace_s=self._s.shutdown_grace_s)
            tasks = [t for t, _ in self._running.values()]
            _done, pending = await asyncio.wait(tasks, timeout=self._s.shutdown_grace_s)
            handback = [
                self._running[t.get_name()][1] for t in pending if t.get_name() in self._running
            ]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            with contextlib.suppress(TimeoutError, RedisError, OSError):
                async with asyncio.timeout(self._s.handback_s):
                    for job in handback:
                        await self._broker.requeue(
                            job,
                            self._s.pool,
                            delay_s=0,
                            reason="worker_shutdown",
                            refund_attempt=True,
                        )
