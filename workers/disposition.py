"""What becomes of a job around its upstream call: may it call now, and after a failure, does
it wait, retry, move to its route's next step or fail?

The worker owns slots, leases and the call itself; this owns the decisions' side effects (the
decisions themselves are pure, in ``failure_policy.py`` and ``pause_policy.py``), so each can be
read on its own.

A queue exists so that work waits: a job whose deployment is paused (a 429 cool-down, an open
breaker, a probe's verdict still out, the ramp after either still narrow) goes back to the queue
for as long as the pause lasts, with jitter, spending no attempt. Only a synchronous caller, who
holds a connection open, is answered at once (503, ``Retry-After``, its job id) when no step of
its route can serve soon (``pause_policy.py``).
"""

from __future__ import annotations

import contextlib
from typing import Any

from redis.exceptions import RedisError

from anygate.broker import COUNT_TOKENS, Broker, ClaimedJob
from anygate.broker.deployment_health import Gate
from anygate.broker.errors import (
    InvalidRequestError,
    UpstreamError,
    UpstreamRateLimitedError,
    UpstreamTransientError,
)
from anygate.broker.routing import Step, deployment_key
from anygate.broker.script_calls.requeue import RequeueReason
from anygate.config import QueueConfig
from anygate.telemetry import count_cooldown, count_rate_limit_wait, count_retry, tracing
from anygate.workers.deployment_guard import CALL, DeploymentGuard, Pass
from anygate.workers.failure_policy import (
    DEFAULT_RATE_LIMIT_DELAY_S,
    OUT_OF_CREDIT,
    Action,
    Decision,
    decide,
)
from anygate.workers.metric_labels import retry_reason
from anygate.workers.pause_policy import Pause, paused_error, resume_delay, sooner_step
from anygate.workers.rate_gate import RateGate, Verdict


def _verdict_attributes(verdict: Verdict) -> dict[str, tracing.Attribute]:
    """The rate windows' answer on the ``rate limit`` span (docs/tracing.md)."""
    found: dict[str, tracing.Attribute] = {"anygate.rate_limit.admitted": verdict.admitted}
    if not verdict.admitted and verdict.never is None:
        found["anygate.rate_limit.retry_after_s"] = verdict.retry_after_s
    return found


class JobDisposition:
    def __init__(
        self, broker: Broker, pool: str, queue: QueueConfig, guard: DeploymentGuard, gate: RateGate
    ) -> None:
        self._broker = broker
        self._pool = pool
        self._queue = queue
        self._guard = guard
        self._gate = gate

    async def clearance(self, job: ClaimedJob, steps: list[Step | None], step: Step) -> Pass | None:
        """May the call be made now? None when the job was dealt with instead: back to the
        queue (a pause, a full rate window: no attempt spent), on to the next step (an open
        breaker), answered 503 (a synchronous caller facing a long pause) or failed (too large
        for any window)."""
        pool = self._pool
        # A client's own key (BYOK) is another account: the gateway's cool-downs and breaker
        # for this deployment say nothing about it, and its failures must not trip them.
        granted = await self._guard.before_call(job, step) if not job.client_key else CALL
        if tracing.enabled and granted.gate is not Gate.CALL:
            tracing.spans.note(
                {"anygate.gate": granted.gate.value, "anygate.wait_s": granted.wait_s}
            )
        if granted.gate is Gate.COOLING:
            await self._wait_out(job, steps, Pause("deployment_cooling_down", granted.wait_s))
            return None
        if granted.gate is Gate.WAIT:
            await self._settling(job, steps, step, granted)
            return None
        if granted.gate is Gate.OPEN:
            await self._pass_open_breaker(job, steps, step, granted.wait_s)
            return None
        verdict = await self._gate.admit(job, step)
        if tracing.enabled:
            tracing.spans.note(_verdict_attributes(verdict))
        if verdict.admitted:
            return granted
        if verdict.never is not None:
            error = InvalidRequestError(verdict.never, code="request_too_large")
            await self._broker.finish(job, pool, succeeded=False, error=error.to_job_error())
        else:
            dep = deployment_key(step.deployment)
            count_rate_limit_wait(pool, dep, verdict.limit, verdict.retry_after_s)
            await self._broker.requeue(
                job,
                pool,
                delay_s=verdict.retry_after_s,
                reason="deployment_rate_limit",
                refund_attempt=True,
            )
        return None

    async def _settling(
        self, job: ClaimedJob, steps: list[Step | None], step: Step, granted: Pass
    ) -> None:
        """The deployment is testing whether it may resume (a probe is out): the route's next
        step serves meanwhile; at the route's end, or while the deployment ramps back up (a
        matter of moments), wait a moment."""
        if job.step + 1 < len(steps) and not granted.ramping:
            history = {
                "attempt": job.attempt,
                "step": job.step,
                "provider": step.provider,
                "model": step.deployment.model,
                "outcome": "deployment_settling",
            }
            await self._move_to_step(
                job,
                steps,
                job.step + 1,
                reason="deployment_settling",
                refund_attempt=True,
                history=history,
            )
            return
        await self._broker.requeue(
            job,
            self._pool,
            delay_s=resume_delay(granted.wait_s, granted.spread_s),
            reason="deployment_settling",
            refund_attempt=True,
        )

    async def _wait_out(self, job: ClaimedJob, steps: list[Step | None], pause: Pause) -> None:
        """A pause on the job's current step: back to the queue until it ends (with jitter,
        no attempt spent), or, for a synchronous caller and a long pause, a 503 at once."""
        if job.synchronous and pause.seconds > self._queue.sync_max_pause_s:
            error = paused_error(pause, steps[job.step]).to_job_error()
            await self._broker.finish(job, self._pool, succeeded=False, error=error)
            return
        await self._broker.requeue(
            job,
            self._pool,
            delay_s=resume_delay(pause.seconds),
            reason=pause.reason,
            refund_attempt=True,
        )

    async def _pass_open_breaker(
        self, job: ClaimedJob, steps: list[Step | None], step: Step, open_s: float
    ) -> None:
        """The deployment's breaker is open: the route's next step; at the route's end, wait
        for whichever step reopens first (a synchronous caller: a 503 unless that is soon)."""
        history = {
            "attempt": job.attempt,
            "step": job.step,
            "provider": step.provider,
            "model": step.deployment.model,
            "outcome": "circuit_open",
        }
        if job.step + 1 < len(steps):
            await self._move_to_step(
                job,
                steps,
                job.step + 1,
                reason="circuit_open",
                refund_attempt=True,
                history=history,
            )
            return
        target, wait_s = sooner_step(steps, job.step, open_s, self._guard.view)
        pause = Pause("circuit_open", wait_s)
        if job.synchronous and wait_s > self._queue.sync_max_pause_s:
            error = paused_error(pause, step).to_job_error()
            await self._broker.finish(
                job, self._pool, succeeded=False, error=error, history_entry=history
            )
            return
        if target == job.step:
            await self._wait_out(job, steps, pause)
            return
        await self._move_to_step(
            job,
            steps,
            target,
            reason="circuit_open",
            refund_attempt=True,
            history=history,
            delay_s=resume_delay(wait_s),
        )

    async def after_failure(
        self,
        job: ClaimedJob,
        steps: list[Step | None],
        step: Step,
        exc: UpstreamError,
        granted: Pass,
        *,
        ours: bool = False,
    ) -> None:
        """``ours``: the failure was a fault of our own code, not the provider's (an adapter
        that raised unexpectedly): it spends the job's attempt like a transient failure, but
        never counts against the deployment. A 429 to a ``:countTokens`` call makes that job
        wait but pauses no one else: Gemini meters token counting apart from generation."""
        pool = self._pool
        decision = decide(exc, job, len(steps), self._queue)
        if job.client_key or ours:
            pass  # the client's account (BYOK) or our own bug: the deployment is not in question
        elif (
            isinstance(exc, UpstreamRateLimitedError)
            and exc.code != OUT_OF_CREDIT
            and job.endpoint != COUNT_TOKENS  # its own quota ran out, not the deployment's
        ):
            with contextlib.suppress(RedisError, OSError):  # every worker pauses it
                pause = exc.retry_after if exc.retry_after is not None else decision.delay_s
                await self._guard.rate_limited(step, pause or DEFAULT_RATE_LIMIT_DELAY_S)
                count_cooldown(deployment_key(step.deployment))
        elif isinstance(exc, UpstreamTransientError) or exc.code == OUT_OF_CREDIT:
            breaker_open = await self._guard.failed(job, step, granted)
            if breaker_open and decision.action is Action.RETRY and job.step + 1 < len(steps):
                decision = Decision(Action.FALL_BACK, next_step=job.step + 1)
        if (reason := retry_reason(decision, exc)) is not None:
            count_retry(pool, reason)
        history = {
            "attempt": job.attempt,
            "step": job.step,
            "provider": step.provider,
            "model": step.deployment.model,
            "outcome": decision.action.value,
            "error": exc.to_attempt_error(),
        }
        if decision.action is Action.COOL_DOWN:
            await self._wait_out(
                job, steps, Pause(RequeueReason.UPSTREAM_RATE_LIMITED, decision.delay_s)
            )
        elif decision.action is Action.RETRY:
            await self._broker.requeue(
                job,
                pool,
                delay_s=decision.delay_s,
                reason=exc.code or "upstream_error",
                refund_attempt=False,
                history_entry=history,
            )
        elif decision.action is Action.FALL_BACK and decision.next_step is not None:
            await self._move_to_step(
                job,
                steps,
                decision.next_step,
                reason="fallback",
                refund_attempt=False,
                history=history,
            )
        else:
            await self._broker.finish(
                job, pool, succeeded=False, error=exc.to_job_error(), history_entry=history
            )

    async def _move_to_step(
        self,
        job: ClaimedJob,
        steps: list[Step | None],
        to_step: int,
        *,
        reason: str,
        refund_attempt: bool,
        history: dict[str, Any],
        delay_s: float = 0.0,
    ) -> None:
        """Requeue the job for another step of its route, in that step's provider's pool."""
        target = steps[to_step]
        await self._broker.requeue(
            job,
            self._pool,
            delay_s=delay_s,
            reason=reason,
            refund_attempt=refund_attempt,
            to_pool=target.provider if target else self._pool,
            to_step=to_step,
            history_entry=history,
            next_model=target.deployment.model if target else None,
        )
