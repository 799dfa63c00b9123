"""The job broker, as the API and the workers hold it: one object over the broker's concerns.

Each concern is a class of its own, all sharing one client's scripts (and so one auto-pipeline):
``JobQueue`` (the API's side of the queue), ``Leases`` (the workers' side: claims, events,
outcomes, leases), ``RateWindows``, ``DeploymentHealth``, ``WorkerRegistry`` and the
``TenantStore``. ``Broker`` only builds them and keeps the names its callers have always used;
new code may reach the concern it needs (``broker.leases``, ``broker.health`` …) directly.
"""

from __future__ import annotations

from redis.asyncio import Redis

from anygate.broker.errors import IdempotencyConflictError
from anygate.broker.handoff import HandOff
from anygate.broker.health_store import DeploymentHealth
from anygate.broker.job_queue import JobQueue
from anygate.broker.keys import KeySpace
from anygate.broker.leases import Leases
from anygate.broker.provider_batches import ProviderBatchStore
from anygate.broker.rate_windows import RateWindows
from anygate.broker.redis_link import RedisLink
from anygate.broker.registry_store import WorkerRegistry
from anygate.broker.scripts import Scripts
from anygate.broker.tenant_store import TenantStore
from anygate.config import AnygateConfig

__all__ = ["Broker", "IdempotencyConflictError"]


class Broker:
    """``link``: a worker's broker waits out Redis outages in every call that is safe to
    repeat (see ``scripts.REPEATABLE``); without one, calls raise at once (the API's way)."""

    def __init__(
        self, redis: Redis, config: AnygateConfig, *, link: RedisLink | None = None
    ) -> None:
        self.link = link
        self.keys = KeySpace.of(config)
        scripts = Scripts(redis, link)
        self.queue = JobQueue(redis, scripts, self.keys, config)
        self.handoff = HandOff(redis, scripts, self.keys)
        self.leases = Leases(scripts, self.keys, config, self.handoff)
        self.rates = RateWindows(scripts, self.keys)
        self.health = DeploymentHealth(scripts, self.keys, config.queue)
        self.registry = WorkerRegistry(redis, self.keys)
        self.tenants = TenantStore(redis, self.keys)
        self.provider_batches = ProviderBatchStore(
            redis, self.keys, scripts, ttl_s=config.retention.result_ttl_s
        )

        # The API's side of the queue.
        self.enqueue = self.queue.enqueue
        self.idempotent_job = self.queue.idempotent_job
        self.get = self.queue.get
        self.cancel = self.queue.cancel
        self.list_jobs = self.queue.list_jobs
        self.events_after = self.queue.events_after
        self.pool_stats = self.queue.pool_stats
        # The workers' side.
        self.claim = self.leases.claim
        self.client_key = self.leases.client_key
        self.append = self.leases.append
        self.finish = self.leases.finish
        self.requeue = self.leases.requeue
        self.heartbeat = self.leases.heartbeat
        self.reclaim = self.leases.reclaim
        # Rate limits and deployment health.
        self.take_rate = self.rates.take
        self.settle_rate = self.rates.settle
        self.cool_down = self.health.cool_down
        self.probe = self.health.probe
        self.report_success = self.health.report_success
        self.report_failure = self.health.report_failure
        self.peek_health = self.health.peek
        self.unregister_worker = self.registry.unregister

    @property
    def in_flight_caps(self) -> str:
        """What ``claim`` enforces; a worker keeps it current from the tenant store."""
        return self.leases.in_flight_caps

    @in_flight_caps.setter
    def in_flight_caps(self, caps: str) -> None:
        self.leases.in_flight_caps = caps
