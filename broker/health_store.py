"""Every deployment's health in Redis, shared by every process: 429 cool-downs, circuit breakers
and the ramp after a pause (``health-1.lua``; the local view: ``deployment_health.py``)."""

from __future__ import annotations

from anygate.broker.keys import KeySpace
from anygate.broker.script_calls import health as script
from anygate.broker.script_calls.health import (
    BreakerRule,
    BreakerState,
    HealthKeys,
    HealthPeek,
    HealthVerdict,
)
from anygate.broker.scripts import Scripts
from anygate.config import QueueConfig


class DeploymentHealth:
    def __init__(self, scripts: Scripts, keys: KeySpace, queue: QueueConfig) -> None:
        self._scripts = scripts
        self._k = keys
        self._queue = queue

    async def cool_down(self, deployment: str, seconds: float) -> None:
        """Pause calls to the deployment (an upstream 429), for every worker."""
        keys = HealthKeys.of(self._k, deployment)
        ms = max(1, int(seconds * 1000))
        await script.cool(self._scripts, keys, self._k.prefix, deployment, ms)

    async def probe(self, deployment: str, probe_id: str) -> HealthVerdict:
        """May a call go ahead? See ``health-1.lua``'s ``probe`` and ``ProbeVerdict``: with
        the milliseconds a pause has left (and for ``wait``, the spread to ask again in)."""
        q = self._queue
        return await script.probe(
            self._scripts,
            HealthKeys.of(self._k, deployment),
            self._k.prefix,
            deployment,
            probe_id=probe_id,
            probe_ttl_ms=int(q.visibility_timeout_s * 1000),
            ramp_ms=int(q.resume_ramp_s * 1000),
        )

    async def report_success(self, deployment: str, probe_id: str) -> BreakerState:
        return await script.success(
            self._scripts,
            HealthKeys.of(self._k, deployment),
            self._k.prefix,
            deployment,
            probe_id=probe_id,
            window_ms=int(self._queue.breaker.window_s * 1000),
        )

    async def report_failure(self, deployment: str, probe_id: str) -> BreakerState:
        """Count a transient failure; returns the breaker's state after it (``OPEN`` when
        this failure opened it)."""
        b = self._queue.breaker
        rule = BreakerRule(
            consecutive_failures=b.consecutive_failures,
            error_rate=b.error_rate,
            min_calls=b.min_calls,
            window_ms=int(b.window_s * 1000),
            cooldown_ms=int(b.cooldown_s * 1000),
        )
        keys = HealthKeys.of(self._k, deployment)
        return await script.failure(
            self._scripts, keys, self._k.prefix, deployment, probe_id=probe_id, rule=rule
        )

    async def peek(self, deployment: str) -> HealthPeek:
        keys = HealthKeys.of(self._k, deployment)
        return await script.peek(self._scripts, keys, self._k.prefix, deployment)
