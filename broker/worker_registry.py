"""The worker registry's value: one codec for what a worker publishes with every heartbeat.

Each pool's registry hash (``KeySpace.workers``) maps a worker id to
``<heartbeat ms> <concurrency> <in flight> <deployment figures json>``. The worker writes it
(``heartbeat-2.lua`` stores it as given); the admin API lists workers from it, and the API's
planner sums the deployment figures for the ``least_busy`` and ``lowest_latency`` strategies.
Two scripts read its head too: ``enqueue-2.lua`` sums the concurrencies (``'^%d+ (%d+)'``) and
``reclaim-6.lua`` forgets workers by their heartbeat (``'^(%d+)'``); so the order of the first
three fields is fixed, and the JSON, which holds no space, comes last.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import orjson

from anygate.broker.routing import DeploymentStats


@dataclass(frozen=True, slots=True)
class DeploymentFigures:
    """One worker's calls in flight to one deployment, and its latency (EWMA, ms) if known."""

    in_flight: int = 0
    latency_ms: float | None = None


@dataclass(frozen=True, slots=True)
class RegistryValue:
    heartbeat_ms: int
    concurrency: int
    in_flight: int
    deployments: Mapping[str, DeploymentFigures] = field(default_factory=dict)
    """By ``provider:model`` (``routing.deployment_key``)."""


def encode_registry_value(value: RegistryValue) -> str:
    figures = orjson.dumps(
        {k: [f.in_flight, f.latency_ms] for k, f in value.deployments.items()}
    ).decode()
    return f"{value.heartbeat_ms} {value.concurrency} {value.in_flight} {figures}"


def decode_registry_value(text: str) -> RegistryValue | None:
    """None for a value this version cannot read. Deployment figures it cannot read are left
    out: they are advisory, and the worker's liveness still counts."""
    parts = text.split(" ", 3)
    try:
        heartbeat_ms, concurrency, in_flight = int(parts[0]), int(parts[1]), int(parts[2])
    except (IndexError, ValueError):
        return None
    deployments = _decode_figures(parts[3]) if len(parts) > 3 else {}
    return RegistryValue(heartbeat_ms, concurrency, in_flight, deployments)


def _decode_figures(raw: str) -> dict[str, DeploymentFigures]:
    try:
        found = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(found, dict):
        return {}
    figures = {}
    for key, pair in found.items():
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], int)):
            continue
        latency = pair[1]
        if latency is not None and not isinstance(latency, int | float):
            continue
        figures[key] = DeploymentFigures(pair[0], latency)
    return figures


def summed_stats(values: Iterable[RegistryValue]) -> dict[str, DeploymentStats]:
    """Every worker's figures per deployment: calls in flight summed, latencies averaged over
    the workers that know one."""
    totals: dict[str, list[float]] = {}
    for value in values:
        for key, figures in value.deployments.items():
            acc = totals.setdefault(key, [0, 0.0, 0])
            acc[0] += figures.in_flight
            if figures.latency_ms is not None:
                acc[1] += figures.latency_ms
                acc[2] += 1
    return {
        key: DeploymentStats(int(acc[0]), acc[1] / acc[2] if acc[2] else None)
        for key, acc in totals.items()
    }
