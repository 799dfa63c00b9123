"""``health-1.lua``: one deployment's cool-down, circuit breaker and ramp, shared by every worker.

One script, five operations, each with its own arguments and reply; the local view of what the
script publishes is ``deployment_health.HealthView``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from anygate.broker.keys import KeySpace
from anygate.broker.scripts import Arg, Scripts


class HealthOp(enum.StrEnum):
    """The script's ``OP`` table."""

    COOL = "cool"
    PROBE = "probe"
    SUCCESS = "success"
    FAILURE = "failure"
    PEEK = "peek"


class ProbeVerdict(enum.StrEnum):
    """The script's ``VERDICT`` table: may a call go ahead?"""

    OK = "ok"
    STEADY = "steady"
    """Yes, and nothing is settling: the view may stop asking."""
    PROBE = "probe"
    """Yes, as the one test call after a pause."""
    COOL = "cool"
    OPEN = "open"
    WAIT = "wait"
    """A probe's verdict is due: ask again."""
    RAMP = "ramp"
    """The ramp after a pause has no room yet: ask again."""


class BreakerState(enum.StrEnum):
    """The script's ``STATE`` table."""

    CLOSED = "closed"
    OPEN = "open"
    HALF = "half"


class HealthEvent(enum.StrEnum):
    """The script's ``EVENT`` table: what it publishes on ``KeySpace.health_channel`` as
    ``<deployment> <event> <ms>``."""

    COOL = "cool"
    OPEN = "open"
    RAMP = "ramp"
    STEADY = "steady"
    DIRTY = "dirty"
    CLEAN = "clean"


@dataclass(frozen=True, slots=True)
class HealthKeys:
    health: str

    @classmethod
    def of(cls, k: KeySpace, deployment: str) -> HealthKeys:
        return cls(k.deployment_health(deployment))

    def keys(self) -> list[str]:
        return [self.health]


@dataclass(frozen=True, slots=True)
class HealthArgs:
    """ARGV 1-3; each operation's own arguments follow (``cool`` … ``peek`` below)."""

    prefix: str
    deployment: str
    op: HealthOp
    rest: tuple[Arg, ...] = ()

    def argv(self) -> list[Arg]:
        return [self.prefix, self.deployment, self.op.value, *self.rest]


@dataclass(frozen=True, slots=True)
class HealthVerdict:
    """The answer to ``probe``: the verdict, the milliseconds a pause has left, and for
    ``WAIT`` / ``RAMP`` the spread over which to ask again (waiters spread out, with jitter)."""

    verdict: ProbeVerdict
    ms: int = 0
    spread_ms: int = 0


@dataclass(frozen=True, slots=True)
class HealthPeek:
    """The answer to ``peek``: the whole state, for a view that may have missed messages."""

    state: BreakerState
    open_ms: int
    """Until an open breaker's cool-down ends."""
    cool_ms: int
    """Until a 429 cool-down ends."""
    dirty: bool
    """A transient failure is recent."""
    settling: bool


async def cool(scripts: Scripts, keys: HealthKeys, prefix: str, deployment: str, ms: int) -> None:
    """Pause calls for ``ms``. Each operation touches its key only, and publishes on
    ``health`` under the prefix."""
    await scripts.health.call(keys, HealthArgs(prefix, deployment, HealthOp.COOL, (ms,)))


async def probe(
    scripts: Scripts,
    keys: HealthKeys,
    prefix: str,
    deployment: str,
    *,
    probe_id: str,
    probe_ttl_ms: int,
    ramp_ms: int,
) -> HealthVerdict:
    args = HealthArgs(prefix, deployment, HealthOp.PROBE, (probe_id, probe_ttl_ms, ramp_ms))
    return decode_probe(await scripts.health.call(keys, args))


def decode_probe(reply: list[Any]) -> HealthVerdict:
    spread = int(reply[2]) if len(reply) > 2 else 0
    return HealthVerdict(ProbeVerdict(reply[0]), int(reply[1]), spread)


async def success(
    scripts: Scripts,
    keys: HealthKeys,
    prefix: str,
    deployment: str,
    *,
    probe_id: str,
    window_ms: int,
) -> BreakerState:
    args = HealthArgs(prefix, deployment, HealthOp.SUCCESS, (probe_id, window_ms))
    return BreakerState(await scripts.health.call(keys, args))


@dataclass(frozen=True, slots=True)
class BreakerRule:
    """When a failure opens the breaker, and for how long (from ``BreakerConfig``)."""

    consecutive_failures: int
    error_rate: float
    min_calls: int
    window_ms: int
    cooldown_ms: int


async def failure(
    scripts: Scripts,
    keys: HealthKeys,
    prefix: str,
    deployment: str,
    *,
    probe_id: str,
    rule: BreakerRule,
) -> BreakerState:
    rest: tuple[Arg, ...] = (
        probe_id,
        rule.consecutive_failures,
        rule.error_rate,
        rule.min_calls,
        rule.window_ms,
        rule.cooldown_ms,
    )
    args = HealthArgs(prefix, deployment, HealthOp.FAILURE, rest)
    return BreakerState(await scripts.health.call(keys, args))


async def peek(scripts: Scripts, keys: HealthKeys, prefix: str, deployment: str) -> HealthPeek:
    return decode_peek(
        await scripts.health.call(keys, HealthArgs(prefix, deployment, HealthOp.PEEK))
    )


def decode_peek(reply: list[Any]) -> HealthPeek:
    state, open_ms, cool_ms, dirty, settling = reply
    return HealthPeek(
        BreakerState(state), int(open_ms), int(cool_ms), int(dirty) == 1, int(settling) == 1
    )
