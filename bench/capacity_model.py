"""docs/capacity.md's model: measured costs per request in, processes and shards out.

Pure arithmetic, no I/O, so it is unit-tested (tests/unit/test_capacity_model.py) apart from the
measurements that feed it (``capacity.py``). Every resource is a single-threaded process, a
Redis shard's main thread included, so each one serves ``1e6 / µs-per-request x utilisation``
requests/s; ``utilisation`` (e.g. 0.6) keeps headroom for bursts, AOF rewrites, failover and
the queueing delay that grows steeply as a single server nears 100 % busy. Worker slots
(concurrent provider calls) follow Little's law: in flight = rate x upstream latency.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

RATES = (1_000, 10_000, 100_000)
"""The loads docs/capacity.md sizes, requests/s."""


@dataclass(frozen=True)
class Inputs:
    """What one synchronous request costs, measured (``capacity.py``), plus the assumptions."""

    redis_us: float
    """Redis main-thread CPU µs per request, on the shard that holds the request's pool."""
    api_us: float
    """API process CPU µs per request."""
    worker_us: float
    """Worker process CPU µs per request (the provider call's own I/O included)."""
    upstream_latency_s: float = 1.0
    """How long the provider takes to answer; sets the calls in flight, not the CPU."""
    utilisation: float = 0.6
    """Target busy share of every single-threaded process."""
    slots_per_worker: int = 1000
    """``--concurrency`` of one worker process (docs/performance.md bounds its RSS at 1,000)."""

    def __post_init__(self) -> None:
        for name in ("redis_us", "api_us", "worker_us"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 < self.utilisation <= 1:
            raise ValueError(f"utilisation must be in (0, 1], got {self.utilisation!r}")
        if self.upstream_latency_s < 0:
            raise ValueError(f"upstream_latency_s must be >= 0, got {self.upstream_latency_s!r}")
        if self.slots_per_worker < 1:
            raise ValueError(f"slots_per_worker must be >= 1, got {self.slots_per_worker!r}")


@dataclass(frozen=True)
class Plan:
    """What ``rate`` requests/s need."""

    rate: float
    shard_rate: float
    """Requests/s one shard serves at the target utilisation."""
    shards: int
    api_rate: float
    api_processes: int
    worker_rate: float
    """Requests/s one worker process serves at the target utilisation (CPU alone)."""
    in_flight: float
    """Provider calls in flight (Little's law): the worker slots needed in total."""
    worker_processes: int
    """Enough for the CPU and for the slots, whichever needs more."""
    worker_bound: str
    """``cpu`` or ``slots``: which of the two set ``worker_processes``."""
    slots_per_worker: int
    """``--concurrency`` each worker process then needs (in flight ÷ processes, rounded up)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def rate_per_process(us_per_request: float, utilisation: float) -> float:
    """Requests/s one single-threaded process serves while busy ``utilisation`` of the time."""
    if us_per_request <= 0:
        raise ValueError(f"us_per_request must be > 0, got {us_per_request!r}")
    return 1e6 / us_per_request * utilisation


def processes_for(rate: float, us_per_request: float, utilisation: float) -> int:
    """How many such processes ``rate`` needs; at least one."""
    if rate < 0:
        raise ValueError(f"rate must be >= 0, got {rate!r}")
    # Round away float dust (1e6 / 250 x 0.6 x 3 is 7200.000000000001) before the ceiling.
    return max(1, math.ceil(round(rate / rate_per_process(us_per_request, utilisation), 9)))


def plan(rate: float, inputs: Inputs) -> Plan:
    """Shards, API processes, worker processes and slots for ``rate`` requests/s.

    A pool lives on one shard, so ``shards`` shards serve ``rate`` only when the load is spread
    over at least that many pools (docs/capacity.md).
    """
    u = inputs.utilisation
    in_flight = rate * inputs.upstream_latency_s
    by_cpu = processes_for(rate, inputs.worker_us, u)
    by_slots = max(1, math.ceil(in_flight / inputs.slots_per_worker))
    workers = max(by_cpu, by_slots)
    return Plan(
        rate=rate,
        shard_rate=rate_per_process(inputs.redis_us, u),
        shards=processes_for(rate, inputs.redis_us, u),
        api_rate=rate_per_process(inputs.api_us, u),
        api_processes=processes_for(rate, inputs.api_us, u),
        worker_rate=rate_per_process(inputs.worker_us, u),
        in_flight=in_flight,
        worker_processes=workers,
        worker_bound="cpu" if by_cpu >= by_slots else "slots",
        slots_per_worker=max(1, math.ceil(in_flight / workers)),
    )


def plans(inputs: Inputs, rates: tuple[int, ...] = RATES) -> list[Plan]:
    return [plan(rate, inputs) for rate in rates]


def table(rows: list[Plan]) -> str:
    """docs/capacity.md's sizing table, as markdown."""
    out = [
        "| requests/s | shards | API processes | worker processes | slots per worker "
        "| in flight | workers set by |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for p in rows:
        out.append(
            f"| {p.rate:,.0f} | {p.shards} | {p.api_processes} | {p.worker_processes} "
            f"| {p.slots_per_worker} | {p.in_flight:,.0f} | {p.worker_bound} |"
        )
    return "\n".join(out)
