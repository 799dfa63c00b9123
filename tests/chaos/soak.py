"""The soak's memory watch: every ``SAMPLE_EVERY_S`` the RSS of every process of the stack and
Redis's ``used_memory``; at the end, is each series flat?

Flat means: the median of the last quarter of the samples is at most the median of the second
quarter plus ``REL_TOL`` of it plus an absolute slack (the first quarter is warm-up: caches,
connection pools and allocator arenas fill there). A process restarted during the run starts a
new series (a new pid); a series shorter than half the run is shown but not judged. The mock
provider is shown and not judged: it is the test's stand-in, and it keeps every request in its
log (the 429-storm audit reads it), so it grows by design.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from dataclasses import dataclass, field

import redis

from tests.chaos.stack import ChaosStack

SAMPLE_EVERY_S = 10.0
REL_TOL = 0.10
RSS_SLACK = 8 * 1024 * 1024
REDIS_SLACK = 2 * 1024 * 1024
MIN_SAMPLES = 8
UNJUDGED = ("mock ",)


def rss_bytes(pid: int) -> int | None:
    """Resident set size from /proc (Linux); None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


@dataclass(frozen=True, slots=True)
class Flatness:
    name: str
    samples: int
    second_quarter: float
    last_quarter: float
    judged: bool
    flat: bool

    def line(self) -> str:
        mib = 1024 * 1024
        verdict = ("flat" if self.flat else "GROWS") if self.judged else "not judged (short)"
        return (
            f"{self.name:<28} {self.samples:>4} samples  Q2 {self.second_quarter / mib:8.1f}"
            f" MiB  Q4 {self.last_quarter / mib:8.1f} MiB  {verdict}"
        )


def flatness(name: str, values: list[int], slack: int, longest: int) -> Flatness:
    n = len(values)
    if n < 4:
        return Flatness(name, n, 0, 0, judged=False, flat=True)
    q2 = statistics.median(values[n // 4 : n // 2])
    q4 = statistics.median(values[3 * n // 4 :])
    judged = n >= max(MIN_SAMPLES, longest // 2) and not name.startswith(UNJUDGED)
    return Flatness(name, n, q2, q4, judged, flat=q4 <= q2 * (1 + REL_TOL) + slack)


@dataclass
class Sampler:
    series: dict[str, list[tuple[float, int]]] = field(default_factory=dict)

    def sample(self, stack: ChaosStack) -> None:
        now = time.time()
        for name, pid in stack.pids().items():
            value = rss_bytes(pid)
            if value is not None:
                self.series.setdefault(f"{name} rss (pid {pid})", []).append((now, value))
        with contextlib.suppress(redis.RedisError), stack.client() as r:
            used = int(r.info("memory")["used_memory"])
            self.series.setdefault("redis used_memory", []).append((now, used))

    async def run(self, stack: ChaosStack, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.to_thread(self.sample, stack)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SAMPLE_EVERY_S)

    def verdicts(self) -> list[Flatness]:
        longest = max((len(v) for v in self.series.values()), default=0)
        return [
            flatness(
                name,
                [v for _t, v in points],
                REDIS_SLACK if name.startswith("redis used") else RSS_SLACK,
                longest,
            )
            for name, points in sorted(self.series.items())
        ]

    def printed(self) -> str:
        """Every series in MiB, one line each, then the verdicts."""
        mib = 1024 * 1024
        lines = [
            f"{name}: " + " ".join(f"{v / mib:.1f}" for _t, v in points)
            for name, points in sorted(self.series.items())
        ]
        return "\n".join([*lines, *(f.line() for f in self.verdicts())])
