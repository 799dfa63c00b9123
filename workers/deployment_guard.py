"""Keep calls away from a deployment that asked for a pause or keeps failing
(docs/queue-semantics.md#retries-and-failover).

Before a call: a deployment cooling down after a 429 makes the job wait in the queue (no attempt
spent); an open breaker moves the job to its route's next step, or makes it wait; once either
pause is over, exactly one probe call goes through (elected in Redis), the others wait for its
verdict, and then calls ramp back up. After a call: transient failures are counted in Redis, and
successes too while a failure is recent or a probe is reporting.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import structlog
from redis.exceptions import RedisError

from anygate.broker import Broker, ClaimedJob
from anygate.broker.deployment_health import Clearance, Gate, HealthView
from anygate.broker.routing import Step, deployment_key
from anygate.broker.script_calls.health import BreakerState, ProbeVerdict
from anygate.config import BreakerConfig

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Pass:
    """What the guard decided for one call; ``probe`` when it is the half-open breaker's."""

    gate: Gate
    wait_s: float = 0.0
    probe: bool = False
    spread_s: float = 0.0
    """For ``WAIT``: ask again after ``wait_s`` plus a random share of this."""
    ramping: bool = False
    """For ``WAIT``: the deployment is healthy again and ramping up (a short wait), rather
    than waiting for a probe's verdict."""


CALL = Pass(Gate.CALL)
"""Call at once: nothing to ask."""


class DeploymentGuard:
    def __init__(self, broker: Broker, view: HealthView, breaker: BreakerConfig) -> None:
        self._broker = broker
        self._view = view
        self._breaker = breaker

    @property
    def view(self) -> HealthView:
        return self._view

    async def before_call(self, job: ClaimedJob, step: Step) -> Pass:
        dep = deployment_key(step.deployment)
        clearance: Clearance = self._view.clearance(dep)
        if clearance.gate is not Gate.ASK:
            return Pass(clearance.gate, clearance.wait_s)
        answer = await self._broker.probe(dep, _probe_id(job))
        verdict, seconds = answer.verdict, answer.ms / 1000
        if verdict is ProbeVerdict.PROBE:
            log.info("deployment paused: probing", deployment=dep, job_id=job.id)
            return Pass(Gate.CALL, probe=True)
        if verdict is ProbeVerdict.STEADY:
            self._view.steady(dep)
            return Pass(Gate.CALL)
        if verdict is ProbeVerdict.OK:
            return Pass(Gate.CALL)
        if verdict is ProbeVerdict.COOL:
            return Pass(Gate.COOLING, seconds)
        if verdict in {ProbeVerdict.WAIT, ProbeVerdict.RAMP}:
            spread = answer.spread_ms / 1000
            return Pass(Gate.WAIT, seconds, spread_s=spread, ramping=verdict is ProbeVerdict.RAMP)
        return Pass(Gate.OPEN, seconds)

    async def succeeded(self, job: ClaimedJob, step: Step, granted: Pass) -> None:
        dep = deployment_key(step.deployment)
        # A probe's verdict is always wanted (it ends a pause); other successes only make up
        # the breaker's error rate while a failure is recent.
        if not (granted.probe or (self._breaker.enabled and self._view.dirty(dep))):
            return
        with contextlib.suppress(RedisError, OSError):
            await self._broker.report_success(dep, _probe_id(job))
            if granted.probe:
                log.info("probe succeeded: calls resume gradually", deployment=dep)

    async def failed(self, job: ClaimedJob, step: Step, granted: Pass) -> bool:
        """Count a transient failure; True when the deployment's breaker is now open."""
        if not self._breaker.enabled:
            return False
        dep = deployment_key(step.deployment)
        try:
            state = await self._broker.report_failure(dep, _probe_id(job))
        except (RedisError, OSError) as exc:
            log.warning("could not count a failure for the breaker", error=str(exc))
            return False
        if state is BreakerState.OPEN:
            log.warning("breaker open", deployment=dep, probe_failed=granted.probe)
            return True
        return False

    async def rate_limited(self, step: Step, seconds: float) -> None:
        """An upstream 429: every worker pauses this deployment for its Retry-After."""
        await self._broker.cool_down(deployment_key(step.deployment), seconds)

    async def refresh(self, steps: list[Step]) -> None:
        """Heal a view that missed messages (a reconnect): read these deployments' state."""
        deps = {deployment_key(s.deployment) for s in steps}
        replies = await asyncio.gather(*(self._broker.peek_health(d) for d in deps))
        for dep, reply in zip(deps, replies, strict=True):
            self._view.apply_peek(dep, reply)


def _probe_id(job: ClaimedJob) -> str:
    return f"{job.id}:{job.attempt}"
