"""The fault schedule, as plain data: which fault, in which order, for how long.

The order is fixed; the quiet gaps and the lengths are drawn from a seeded random source, so a
run is repeatable (the seed is in the report). ``Window`` records when a fault actually held, in
wall-clock seconds, which is what the reconciliation compares job times against.
"""

from __future__ import annotations

import dataclasses
import enum
import random
from dataclasses import dataclass

from tests.chaos.settings import GEMINI_CHAT, OPENAI_CHAT, Profile


class Fault(enum.StrEnum):
    KILL_WORKER = "kill -9 worker"
    KILL_API = "kill -9 api"
    KILL_CONTROL = "kill -9 control"
    REDIS_SHUTDOWN = "redis SHUTDOWN"
    REDIS_KILL = "redis kill -9"
    REDIS_PAUSE = "redis SIGSTOP"
    STORM_429 = "429 storm"
    BURST_5XX = "5xx burst"
    HANGS = "upstream hangs"
    DROPS = "mid-stream drops"

    @property
    def upstream(self) -> bool:
        """Injected at the provider: the only faults allowed to fail a job."""
        return self in {Fault.STORM_429, Fault.BURST_5XX, Fault.HANGS, Fault.DROPS}

    @property
    def redis(self) -> bool:
        return self in {Fault.REDIS_SHUTDOWN, Fault.REDIS_KILL, Fault.REDIS_PAUSE}


STORM_RETRY_AFTER_S = 2.0


@dataclass(frozen=True, slots=True)
class Step:
    fault: Fault
    gap_s: float
    """Quiet time before the fault starts."""
    length_s: float
    """How long it holds: a process or Redis stays down, a storm or burst lasts."""
    target: str = ""
    """The slot killed, or the upstream model the mock misbehaves for."""
    count: int = 0
    """Hangs and drops: how many requests the mock spoils."""


@dataclass(frozen=True, slots=True)
class Window:
    """When a fault held, as it happened (``time.time()`` seconds)."""

    fault: Fault
    target: str
    start: float
    end: float
    victim: str = ""
    """A killed worker's id: its leases name it, so its jobs' redeliveries can be told apart."""

    def covers(self, t: float, margin_s: float) -> bool:
        return self.start <= t <= self.end + margin_s

    def overlaps(self, start: float, end: float) -> bool:
        return start <= self.end and end >= self.start


def _one_pass(rng: random.Random, profile: Profile, gap: tuple[float, float]) -> list[Step]:
    def g() -> float:
        return round(rng.uniform(*gap), 2)

    return [
        Step(Fault.KILL_WORKER, g(), round(rng.uniform(1.5, 3.0), 2), target="worker0"),
        Step(Fault.STORM_429, g(), round(rng.uniform(10.0, 15.0), 2), target=OPENAI_CHAT),
        Step(Fault.KILL_API, g(), round(rng.uniform(1.5, 3.0), 2), target="api1"),
        Step(Fault.BURST_5XX, g(), round(rng.uniform(4.0, 6.0), 2), target=GEMINI_CHAT),
        Step(Fault.REDIS_PAUSE, g(), profile.pause_s),
        Step(Fault.KILL_CONTROL, g(), round(rng.uniform(1.5, 3.0), 2), target="control"),
        Step(Fault.HANGS, g(), round(rng.uniform(4.0, 6.0), 2), target=OPENAI_CHAT, count=6),
        Step(Fault.KILL_WORKER, g(), round(rng.uniform(1.5, 3.0), 2), target="worker2"),
        Step(Fault.REDIS_SHUTDOWN, g(), round(rng.uniform(1.5, 3.0), 2)),
        Step(Fault.DROPS, g(), round(rng.uniform(3.0, 5.0), 2), target=OPENAI_CHAT, count=6),
        Step(Fault.REDIS_KILL, g(), round(rng.uniform(1.5, 3.0), 2)),
    ]


def build_schedule(profile: Profile) -> list[Step]:
    """One pass of every fault for the bounded run; for a soak, milder passes (longer quiet
    gaps, only worker2 killed, no API or control kill) repeated to fill its length."""
    rng = random.Random(profile.seed)
    if not profile.soak_s:
        return _one_pass(rng, profile, (3.0, 5.0))
    steps: list[Step] = []
    room = profile.soak_s - 120  # the last two minutes run fault-free
    while True:
        for drawn in _one_pass(rng, profile, (20.0, 40.0)):
            if drawn.fault in {Fault.KILL_API, Fault.KILL_CONTROL}:
                continue
            step = (
                dataclasses.replace(drawn, target="worker2")
                if drawn.fault is Fault.KILL_WORKER
                else drawn
            )
            room -= step.gap_s + step.length_s
            if room < 0:
                return steps
            steps.append(step)
