"""This process's view of every deployment's health: 429 cool-downs and circuit breakers.

The truth lives in Redis (``health-1.lua``), which publishes each change of state; every worker
and API process keeps this view from those messages, so the common case (a steady deployment)
costs no Redis call before an upstream call. A deployment that is settling after a pause (its
breaker's or cool-down's probe is due, or calls are ramping back up) needs Redis for each call,
until Redis announces it steady again. A missed message (a reconnect) is healed by ``refresh``.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

from anygate.broker.script_calls.health import BreakerState, HealthEvent, HealthPeek


class Gate(enum.Enum):
    CALL = "call"
    COOLING = "cooling"
    """An upstream 429 asked for a pause: the job waits in the queue, no attempt spent."""
    OPEN = "open"
    """The breaker is open: the job moves on to its route's next step, or waits for it."""
    ASK = "ask"
    """Settling after a pause: Redis decides (one probe call, then a ramp)."""
    WAIT = "wait"
    """Redis said: not yet (a probe's verdict is out, or the ramp has no room): the job waits a
    moment in the queue, no attempt spent."""


@dataclass(slots=True)
class DeploymentState:
    cool_until: float = 0.0
    open_until: float = 0.0
    open: bool = False
    dirty: bool = False
    """A transient failure is recent: successes are reported too (they reset the count of
    consecutive failures and make up the error rate)."""
    settling: bool = False
    """After a cool-down or an open breaker, until Redis announces the deployment steady: every
    call asks Redis (a probe first, then the ramp)."""


@dataclass(frozen=True, slots=True)
class Clearance:
    gate: Gate
    wait_s: float = 0.0


class HealthView:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._states: dict[str, DeploymentState] = {}

    def _state(self, deployment: str) -> DeploymentState:
        state = self._states.get(deployment)
        if state is None:
            state = self._states[deployment] = DeploymentState()
        return state

    def apply(self, message: str) -> None:
        """One message of the health channel: ``<deployment> <event> <ms>``."""
        try:
            deployment, event, ms_text = message.rsplit(" ", 2)
            seconds = int(ms_text) / 1000
        except ValueError:
            return
        state = self._state(deployment)
        now = self._clock()
        if event == HealthEvent.COOL:
            state.cool_until = max(state.cool_until, now + seconds)
            state.settling = True
        elif event == HealthEvent.OPEN:
            state.open, state.open_until, state.dirty = True, now + seconds, False
            state.settling = True
        elif event in {_CLOSED, HealthEvent.RAMP}:
            state.open, state.open_until, state.dirty = False, 0.0, False
            state.settling = event == HealthEvent.RAMP or state.settling
        elif event == HealthEvent.STEADY:
            state.settling = False
        elif event == HealthEvent.DIRTY:
            state.dirty = True
        elif event == HealthEvent.CLEAN:
            state.dirty = False

    def apply_peek(self, deployment: str, peek: HealthPeek) -> None:
        """What ``health-1.lua``'s ``peek`` says: the whole state, replacing this view's."""
        now = self._clock()
        state = self._state(deployment)
        state.open = peek.state in {BreakerState.OPEN, BreakerState.HALF}
        state.open_until = now + peek.open_ms / 1000
        state.cool_until = now + peek.cool_ms / 1000
        state.dirty = peek.dirty
        state.settling = peek.settling

    def steady(self, deployment: str) -> None:
        """Redis said nothing is settling (its announcement may have been missed)."""
        state = self._states.get(deployment)
        if state is not None:
            state.settling = False

    def clearance(self, deployment: str) -> Clearance:
        state = self._states.get(deployment)
        if state is None:
            return _CALL
        now = self._clock()
        if state.cool_until > now:
            return Clearance(Gate.COOLING, state.cool_until - now)
        if state.open:
            if state.open_until > now:
                return Clearance(Gate.OPEN, state.open_until - now)
            return Clearance(Gate.ASK)
        if state.settling:
            return Clearance(Gate.ASK)
        return _CALL

    def healthy(self, deployment: str) -> bool:
        """For routing: a deployment cooling down or with an open breaker goes last. One whose
        breaker awaits its probe does not: the probe must have a job to make it."""
        return self.clearance(deployment).gate in {Gate.CALL, Gate.ASK}

    def reopens_in(self, deployment: str) -> float:
        """Seconds until calls may be tried again (0: now, or after asking Redis)."""
        return self.clearance(deployment).wait_s

    def dirty(self, deployment: str) -> bool:
        state = self._states.get(deployment)
        return state is not None and (state.dirty or state.open)


_CALL = Clearance(Gate.CALL)
_CLOSED = "closed"
"""Announced by scripts before the ramp after a pause existed (as ``ramp`` is now): still read,
so a view follows such a script through a rolling upgrade."""
