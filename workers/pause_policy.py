"""How a job waits for a paused deployment: pure decisions, unit-tested without Redis.

A deployment pauses after a 429 (its ``Retry-After``) or when its breaker opens. Jobs wait in the
queue, not in a worker's slot, and come back spread out: were they all due at the instant the
pause ends, every slot would call at once, which is what the pause was for.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from anygate.broker.deployment_health import HealthView
from anygate.broker.errors import DeploymentPausedError
from anygate.broker.routing import Step, deployment_key

MIN_SPREAD_S = 0.1
MAX_SPREAD_S = 2.0


@dataclass(frozen=True, slots=True)
class Pause:
    reason: str
    """``deployment_cooling_down``, ``upstream_rate_limited`` or ``circuit_open``."""
    seconds: float


def resume_delay(
    wait_s: float, spread_s: float | None = None, *, rng: Callable[[], float] = random.random
) -> float:
    """When a job that waits ``wait_s`` should come back: after the wait, plus a random share
    of ``spread_s`` (by default a quarter of the wait, 0.1 to 2 s), so waiters arrive spread
    out."""
    if spread_s is None:
        spread_s = min(max(MIN_SPREAD_S, wait_s / 4), MAX_SPREAD_S)
    return max(0.0, wait_s) + rng() * max(0.0, spread_s)


def sooner_step(
    steps: Sequence[Step | None], current: int, current_wait_s: float, view: HealthView
) -> tuple[int, float]:
    """The step of the route that reopens first, and in how many seconds; the current step
    (``current_wait_s`` from now) wins ties, so a job does not wander between equals."""
    best, best_wait = current, current_wait_s
    for i, step in enumerate(steps):
        if step is None or i == current:
            continue
        wait = view.reopens_in(deployment_key(step.deployment))
        if wait < best_wait:
            best, best_wait = i, wait
    return best, best_wait


def paused_error(pause: Pause, step: Step | None) -> DeploymentPausedError:
    """The error a synchronous caller gets when nothing can serve it soon: a 503 with
    ``Retry-After`` and the job id in its headers."""
    where = f"{step.provider}/{step.deployment.model}" if step else "the deployment"
    why = (
        "is failing and its circuit breaker is open"
        if pause.reason == "circuit_open"
        else "asked for a pause (429)"
    )
    return DeploymentPausedError(
        f"{where} {why}; no deployment of the route can serve for about "
        f"{math.ceil(pause.seconds)} s: retry after that",
        code="circuit_open" if pause.reason == "circuit_open" else "deployment_cooling_down",
        retry_after=max(1, math.ceil(pause.seconds)),
    )
