"""Turn a validated request into a job's route plan, once, at submit
(docs/operations.md#providers-and-routing).

Everything a plan needs besides config is the live deployment figures the workers publish with
their heartbeats (for ``least_busy`` / ``lowest_latency``); they are read at most once a second
per process, and only when some route uses such a strategy. A request that a Gemini step of
its plan could not carry is rejected here with a 400 naming the field, before it is queued. A
Gemini ``:countTokens`` call is planned over the route's Gemini deployments only.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis

from anygate.broker import COUNT_TOKENS, KeySpace
from anygate.broker.deployment_health import HealthView
from anygate.broker.registry_store import WorkerRegistry
from anygate.broker.routing import (
    DeploymentStats,
    RouteSelector,
    Step,
    plan,
    route_for,
)
from anygate.broker.worker_registry import summed_stats
from anygate.config import AnygateConfig, ProviderKind
from anygate.core.capabilities import token_counting_refused
from anygate.core.translate import chat_request_to_gemini, embeddings_request_to_gemini

LIVE_STRATEGIES = frozenset({"least_busy", "lowest_latency"})
STATS_MAX_AGE_S = 1.0


class Planner:
    def __init__(self, config: AnygateConfig, redis: Redis, health: HealthView) -> None:
        self._config = config
        self._registry = WorkerRegistry(redis, KeySpace.of(config))
        self._selector = RouteSelector()
        self._health = health
        self._stats: dict[str, DeploymentStats] = {}
        self._stats_at = 0.0
        self._live = any(r.strategy in LIVE_STRATEGIES for r in config.models.values())

    async def plan(self, endpoint: str, body: Mapping[str, Any]) -> list[Step]:
        model = str(body["model"])
        route = route_for(self._config, endpoint, model)
        if endpoint == COUNT_TOKENS and (
            refused := token_counting_refused(model, route, self._config.providers)
        ):
            raise refused
        stats = await self._live_stats() if self._live else {}
        healthy = self._health.healthy
        steps = plan(self._config, endpoint, model, self._selector, stats, healthy=healthy)
        if endpoint == COUNT_TOKENS:
            return self._gemini_steps(steps)
        self._check_translatable(endpoint, body, steps)
        return steps

    def _gemini_steps(self, steps: list[Step]) -> list[Step]:
        """A token count is asked of Gemini deployments only, in the plan's order: another
        provider has no endpoint for it (and a count is never estimated). The route's first
        deployment is Gemini's, so at least one step is left."""
        providers = self._config.providers
        return [s for s in steps if providers[s.provider].kind is ProviderKind.GEMINI]

    def _check_translatable(
        self, endpoint: str, body: Mapping[str, Any], steps: list[Step]
    ) -> None:
        for step in steps:
            if not self._config.providers[step.provider].kind.speaks_gemini:
                continue
            if endpoint == "/v1/chat/completions":
                chat_request_to_gemini(body)
            else:
                embeddings_request_to_gemini(body, step.deployment.model)
            return  # the translation does not depend on which Gemini deployment

    async def _live_stats(self) -> dict[str, DeploymentStats]:
        if time.monotonic() - self._stats_at < STATS_MAX_AGE_S:
            return self._stats
        published = [await self._registry.values(pool) for pool in self._config.providers]
        self._stats = summed_stats(v for by_worker in published for v in by_worker.values())
        self._stats_at = time.monotonic()
        return self._stats
