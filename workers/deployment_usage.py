"""Per-deployment in-flight counts and latency of one worker, published with its heartbeat.

The API reads these (summed over workers) for the ``least_busy`` and ``lowest_latency``
strategies; they are advisory, so a heartbeat's staleness is acceptable and nothing is written
to Redis on the hot path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from anygate.broker.routing import Step, deployment_key
from anygate.broker.worker_registry import DeploymentFigures

EWMA_WEIGHT = 0.2


@dataclass
class _Figures:
    in_flight: int = 0
    latency_ms: float | None = None


@dataclass
class DeploymentUsage:
    _figures: dict[str, _Figures] = field(default_factory=dict)

    def track(self, step: Step) -> _Call:
        figures = self._figures.setdefault(deployment_key(step.deployment), _Figures())
        figures.in_flight += 1
        return _Call(figures, time.monotonic())

    def snapshot(self) -> dict[str, DeploymentFigures]:
        """What the heartbeat publishes (``worker_registry``), latencies to 0.1 ms."""
        return {
            k: DeploymentFigures(
                f.in_flight, None if f.latency_ms is None else round(f.latency_ms, 1)
            )
            for k, f in self._figures.items()
        }


@dataclass
class _Call:
    figures: _Figures
    started: float

    def done(self, *, ok: bool) -> None:
        self.figures.in_flight -= 1
        if ok:
            took = (time.monotonic() - self.started) * 1000
            prev = self.figures.latency_ms
            self.figures.latency_ms = took if prev is None else prev + EWMA_WEIGHT * (took - prev)
