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
from anygate.workers.pricing import cost_usd
from anygate.workers.tenant_view import TenantView
from anygate.workers.upstream_call import AdapterFaultError
from anygate.workers.worker_config import (
    RouteMemory,
    WorkerRuntime,
    adapter_unchanged,
    build_runtime,
)

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
        self._s = settings
        self._subs = subscriptions
        self._rt = build_runtime(
            config, settings.pool, settings.concurrency, broker, HealthView(), adapter=adapter
        )
        """What this worker derives from its config; swapped whole by ``reconfigure``. A job
        keeps the runtime it was claimed under (``_job_rt``) until it ends."""
        self._job_rt: dict[str, WorkerRuntime] = {}
        self._retired: list[WorkerRuntime] = []
        """Runtimes swapped out whose adapter still serves running jobs: closed after them."""
        self._closing: set[asyncio.Task[None]] = set()
        self._routes = RouteMemory()
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

    @property
    def _config(self) -> AnygateConfig:
        return self._rt.config

    @property
    def _broker(self) -> Broker:
        return self._rt.broker

    @property
    def _guard(self) -> DeploymentGuard:
        return self._rt.guard

    @property
    def _tenants(self) -> TenantView:
        return self._rt.tenants

    @property
    def concurrency(self) -> int:
        return self._rt.concurrency

    @property
    def adapter(self) -> ProviderAdapter:
        return self._rt.adapter

    def reconfigure(self, config: AnygateConfig, concurrency: int, broker: Broker) -> None:
        """A config reload (docs/operations.md#reloading-configuration): build the whole new
        runtime first (a failure raises and changes nothing), then swap it in. Running jobs
        finish with the runtime they started with; the next claim uses the new one, with as
        many slots as ``concurrency`` says (fewer: no job is stopped, claims wait until
        enough finish)."""
        old = self._rt
        keep = adapter_unchanged(old, config, self._s.pool, concurrency)
        new = build_runtime(
            config,
            self._s.pool,
            concurrency,
            broker,
            old.guard.view,
            adapter=old.adapter if keep else None,
        )
        broker.in_flight_caps = old.broker.in_flight_caps  # until the tenant view refreshes
        self._rt = new
        self._routes.moved_on(old.config)
        if not keep:
            self._retired.append(old)
            self._close_idle_adapters()
        self._slots_gauge.set(concurrency)
        self._slot_freed.set()  # more slots: claim now
        self._wake.set()

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
        # through the worker: a reload swaps the tenant view and the health view stays
        await self._subs.listen(k.auth_channel, self._tenants_changed)
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
            free = self._rt.concurrency - len(self._slots)
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
            rt = self._rt
            for job in jobs:
                task = asyncio.create_task(self._process(job, rt), name=job.id)
                self._job_rt[job.id] = rt
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
        self._job_rt.pop(task.get_name(), None)
        self._free_slot(task.get_name())
        if self._retired:
            self._close_idle_adapters()

    def _tenants_changed(self, message: str) -> None:
        self._tenants.changed(message)

    def _close_idle_adapters(self) -> None:
        """Close the adapters of swapped-out runtimes that no running job uses any more."""
        busy = {id(rt.adapter) for rt in self._job_rt.values()} | {id(self._rt.adapter)}
        for rt in [rt for rt in self._retired if id(rt.adapter) not in busy]:
            self._retired.remove(rt)
            task = asyncio.create_task(rt.adapter.aclose(), name="close-adapter")
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close_adapters(self) -> None:
        """At the process's end: the current adapter and any still retired."""
        await asyncio.gather(*self._closing, return_exceptions=True)
        for rt in [*self._retired, self._rt]:
            await rt.adapter.aclose()
        self._retired.clear()

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
        now_ms = int(time.time() * 1000)
        registry = RegistryValue(
            now_ms, self._rt.concurrency, len(self._running), self._usage.snapshot()
        )
        owned = [(jid, job.attempt) for jid, (_t, job) in self._running.items()]
        started = time.perf_counter()
        lost = await self._broker.heartbeat(self._s.pool, self._s.worker_id, registry, owned)
        observe_redis_roundtrip(time.perf_counter() - started)
        for job_id in lost:
            self._abandon(job_id, reason="lease lost")
        await self._guard.refresh(list(self._rt.pool_steps))
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

    async def _process(self, job: ClaimedJob, rt: WorkerRuntime) -> None:
        """Run one job; whatever happens, nothing escapes the task unlogged. A failure here that
        is not the provider's leaves the job to its lease: it is redelivered, not failed."""
        attempt = self._attempt_span(job) if tracing.enabled else tracing.NULL
        try:
            with attempt:
                await self._run(job, rt)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "job aborted by an internal error; its lease will redeliver it",
                job_id=job.id,
                attempt=job.attempt,
            )

    async def _run(self, job: ClaimedJob, rt: WorkerRuntime) -> None:
        pool = self._s.pool
        steps = self._routes.steps(job, rt.config, pool)
        step = steps[job.step] if job.step < len(steps) else None
        if step is None or step.provider != pool:
            if self._routes.within_grace(job):
                # Queued by a process that took a config this worker has not (yet): back to
                # the queue, no attempt spent, until this worker reloads too.
                await rt.broker.requeue(
                    job, pool, delay_s=1.0, reason="config_pending", refund_attempt=True
                )
                return
            error = ModelNotFoundError(
                f"model {job.model!r} has no deployment for step {job.step} in pool {pool!r} "
                "(configuration changed?)"
            )
            await rt.broker.finish(job, pool, succeeded=False, error=error.to_job_error())
            return

        try:
            client_key = rt.broker.client_key(job)
        except ClientKeyError as exc:
            unreadable = AnygateError(str(exc), code="client_key_unreadable")
            await rt.broker.finish(job, pool, succeeded=False, error=unreadable.to_job_error())
            return
        with tracing.spans.rate_limit() if tracing.enabled else tracing.NULL:
            granted = await rt.disposition.clearance(job, steps, step)
        if granted is None:
            return
        relay = ChunkRelay(rt.broker, job)
        usage = self._usage.track(step)
        try:
            outcome = await rt.upstream.call(job, step, relay, client_key)
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
            await rt.disposition.after_failure(job, steps, step, exc, granted, ours=ours)
            return
        usage.done(ok=True)
        self._free_slot(job.id)
        await rt.broker.finish(
            job,
            pool,
            succeeded=True,
            result=outcome.result,
            usage=outcome.usage,
            cost_usd=cost_usd(outcome.usage, step.deployment),
        )
        await rt.gate.settle(job, step, outcome.usage)
        if not job.client_key:
            await rt.guard.succeeded(job, step, granted)

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
