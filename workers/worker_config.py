"""What a worker derives from its config, as one swappable set, and how it resolves a job's
route across config generations (docs/operations.md#reloading-configuration).

A reload builds a whole new ``WorkerRuntime`` (broker, adapter, rate gate, breaker guard,
disposition, tenant view, the pool's steps, the slot count) from the new config before anything
changes; the worker then swaps it in at once. A job runs start to end with the runtime it was
claimed under; only new claims take the new one. The deployment health the worker has heard
of (``HealthView``) is the process's and carries over.

Processes do not reload at the same instant, so for a while a job may name a deployment that
this worker's config no longer has (it was queued before the change) or does not have yet (the
API took the change first). ``RouteMemory`` answers the first from the configs this worker ran
before; for the second, the job goes back to its queue without spending an attempt, for up to
``CONFIG_SKEW_GRACE_S``, time for this worker to take the new config too.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from anygate.broker import Broker, ClaimedJob
from anygate.broker.deployment_health import HealthView
from anygate.broker.routing import Step, decode_plan, deployment_for, step_from_wire
from anygate.config import AnygateConfig
from anygate.workers.adapters import create_adapter
from anygate.workers.adapters.base import ProviderAdapter
from anygate.workers.deployment_guard import DeploymentGuard
from anygate.workers.disposition import JobDisposition
from anygate.workers.rate_gate import RateGate
from anygate.workers.tenant_view import TenantView
from anygate.workers.upstream_call import UpstreamCall

CONFIG_SKEW_GRACE_S = 30.0
"""How long a job naming a deployment this worker does not know is put back (no attempt spent)
before it is failed as ``model_not_found``: the time for every process to take a reload."""
EARLIER_CONFIGS = 8
"""Configs remembered for the jobs queued under them."""


@dataclass(frozen=True, slots=True)
class WorkerRuntime:
    config: AnygateConfig
    concurrency: int
    broker: Broker
    adapter: ProviderAdapter
    upstream: UpstreamCall
    gate: RateGate
    guard: DeploymentGuard
    disposition: JobDisposition
    tenants: TenantView
    pool_steps: tuple[Step, ...]


def slots_of(config: AnygateConfig, pool: str, override: int | None) -> int:
    """``--concurrency`` wins over ``pools.<pool>.concurrency`` for the process's whole life."""
    return override or config.pool(pool).concurrency


def build_runtime(
    config: AnygateConfig,
    pool: str,
    concurrency: int,
    broker: Broker,
    health: HealthView,
    *,
    adapter: ProviderAdapter | None = None,
) -> WorkerRuntime:
    """Every derived object, from ``config``; ``adapter`` when the caller keeps the old one
    (the provider's settings and the slot count did not change: its connections stay warm)."""
    adapter = adapter or create_adapter(config, pool, concurrency)
    gate = RateGate(broker, config.queue, config.tenants)
    guard = DeploymentGuard(broker, health, config.queue.breaker)
    return WorkerRuntime(
        config=config,
        concurrency=concurrency,
        broker=broker,
        adapter=adapter,
        upstream=UpstreamCall(adapter, config, pool),
        gate=gate,
        guard=guard,
        disposition=JobDisposition(broker, pool, config.queue, guard, gate),
        tenants=TenantView(broker.tenants, broker, gate, pool),
        pool_steps=tuple(
            Step(alias, dep)
            for alias, route in config.models.items()
            for dep in route.deployments
            if dep.provider == pool
        ),
    )


def adapter_unchanged(old: WorkerRuntime, new: AnygateConfig, pool: str, concurrency: int) -> bool:
    return old.concurrency == concurrency and old.config.providers[pool] == new.providers[pool]


@dataclass
class RouteMemory:
    """The configs this worker ran before the current one (newest first), and when it first
    met each step it could not resolve."""

    earlier: deque[AnygateConfig] = field(default_factory=lambda: deque(maxlen=EARLIER_CONFIGS))
    _unknown: dict[tuple[str, str, int], float] = field(default_factory=dict)

    def moved_on(self, previous: AnygateConfig) -> None:
        self.earlier.appendleft(previous)
        self._unknown.clear()  # the new config may know them: each gets a fresh grace

    def steps(self, job: ClaimedJob, current: AnygateConfig, pool: str) -> list[Step | None]:
        """The job's route, each step from the newest config that has it; a job queued
        without a plan is served by its pool's deployment."""
        configs = (current, *self.earlier)
        if job.plan:
            return [
                next((s for c in configs if (s := step_from_wire(c, wire)) is not None), None)
                for wire in decode_plan(job.plan)
            ]
        for config in configs:
            dep = deployment_for(config, job.model, pool)
            if dep is not None:
                return [Step(job.model, dep)]
        return [None]

    def within_grace(self, job: ClaimedJob) -> bool:
        """Whether a job whose step this worker cannot resolve should wait for a reload
        rather than fail: true for ``CONFIG_SKEW_GRACE_S`` after this worker first met it."""
        key = (job.model, job.plan, job.step)
        first = self._unknown.setdefault(key, time.monotonic())
        return time.monotonic() - first < CONFIG_SKEW_GRACE_S
