"""Which deployments serve a request, in which order: pure decisions over config and live stats.

A request for a model alias gets a *plan*: the alias's deployments ordered by its strategy, then
those of each fallback alias (breadth-first, each alias once). The job is queued in the pool of
the plan's first step; a worker that exhausts ``attempts_per_deployment`` on a step moves the job
to the next one, possibly in another provider's pool (docs/operations.md#providers-and-routing). The
plan is computed once, at submit, so every process agrees on it and it can be shown on the job.

Strategies:
- ``ordered``: as listed (first healthy one wins, the rest are fallbacks);
- ``weighted``: smooth weighted round-robin picks the first step, the rest follow as listed;
- ``least_busy``: fewest in-flight calls first (from workers' heartbeats);
- ``lowest_latency``: lowest moving-average latency first; unmeasured deployments go first so
  they get measured;
- ``lowest_cost``: cheapest input + output price per 1M tokens first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from anygate.broker.errors import InvalidRequestError, ModelNotFoundError
from anygate.broker.models import COUNT_TOKENS
from anygate.config import AnygateConfig, Deployment, ModelKind, ModelRoute

ENDPOINT_KINDS: dict[str, ModelKind | None] = {
    "/v1/chat/completions": ModelKind.CHAT,
    "/v1/embeddings": ModelKind.EMBEDDING,
    COUNT_TOKENS: None,  # any kind: Gemini counts the tokens of embedding models' input too
}
"""Each endpoint a job can have, and the kind of model it needs (None: any)."""


def deployment_key(dep: Deployment) -> str:
    """The name a deployment's health, limits and usage are kept under: ``provider:model``,
    and ``provider:model@account`` for one of several accounts (docs/operations.md#accounts)."""
    key = f"{dep.provider}:{dep.model}"
    return key if dep.account is None else f"{key}@{dep.account}"


@dataclass(frozen=True, slots=True)
class Step:
    """One deployment of a plan, with the alias whose route it came from (for prices)."""

    alias: str
    deployment: Deployment

    @property
    def provider(self) -> str:
        return self.deployment.provider

    def to_wire(self) -> list[str]:
        """``[alias, provider, model]``, and the account as a fourth element when it has one
        (so plans stored before accounts existed still read the same)."""
        dep = self.deployment
        wire = [self.alias, dep.provider, dep.model]
        return wire if dep.account is None else [*wire, dep.account]


@dataclass(frozen=True, slots=True)
class DeploymentStats:
    in_flight: int = 0
    latency_ms: float | None = None


@dataclass
class RouteSelector:
    """Orders a route's deployments; holds the smooth-WRR state of this process."""

    _wrr: dict[str, dict[int, int]] = field(default_factory=dict)

    def order(
        self, alias: str, route: ModelRoute, stats: Mapping[str, DeploymentStats]
    ) -> list[Deployment]:
        deps = list(route.deployments)
        if route.strategy == "weighted":
            first = self._weighted_pick(alias, deps)
            return [deps[first], *(d for i, d in enumerate(deps) if i != first)]
        if route.strategy == "least_busy":
            return sorted(deps, key=lambda d: stats.get(deployment_key(d), _IDLE).in_flight)
        if route.strategy == "lowest_latency":
            return sorted(deps, key=lambda d: _latency(stats.get(deployment_key(d), _IDLE)))
        if route.strategy == "lowest_cost":
            return sorted(deps, key=lambda d: d.input_price_per_m + d.output_price_per_m)
        return deps

    def _weighted_pick(self, alias: str, deps: list[Deployment]) -> int:
        current = self._wrr.setdefault(alias, dict.fromkeys(range(len(deps)), 0))
        total = sum(d.weight for d in deps)
        best = 0
        for i, dep in enumerate(deps):
            current[i] = current.get(i, 0) + dep.weight
            if current[i] > current[best]:
                best = i
        current[best] -= total
        return best


_IDLE = DeploymentStats()


def _latency(stats: DeploymentStats) -> float:
    return -1.0 if stats.latency_ms is None else stats.latency_ms


def route_for(config: AnygateConfig, endpoint: str, model: str) -> ModelRoute:
    """The model's route; errors name the field at fault."""
    if endpoint not in ENDPOINT_KINDS:
        raise InvalidRequestError(
            f"unsupported endpoint {endpoint!r}; expected one of {sorted(ENDPOINT_KINDS)}",
            param="endpoint",
        )
    route = config.models.get(model)
    if route is None:
        raise ModelNotFoundError(
            f"The model `{model}` does not exist or you do not have access to it.", param="model"
        )
    kind = ENDPOINT_KINDS[endpoint]
    if kind is not None and route.kind is not kind:
        raise InvalidRequestError(
            f"model {model!r} is a {route.kind.value} model and cannot serve {endpoint}",
            param="model",
        )
    return route


def plan(
    config: AnygateConfig,
    endpoint: str,
    model: str,
    selector: RouteSelector,
    stats: Mapping[str, DeploymentStats],
    *,
    healthy: Callable[[str], bool] = lambda _key: True,
) -> list[Step]:
    """Each alias's deployments in its strategy's order, except that those cooling down after a
    429 or with an open breaker go last (stable): other deployments keep serving meanwhile."""
    route_for(config, endpoint, model)
    steps: list[Step] = []
    seen: set[str] = set()
    queue = [model]
    while queue:
        alias = queue.pop(0)
        if alias in seen:
            continue
        seen.add(alias)
        route = config.models[alias]
        ordered = selector.order(alias, route, stats)
        ordered.sort(key=lambda d: not healthy(deployment_key(d)))
        steps += [Step(alias, d) for d in ordered]
        queue += route.fallbacks
    return steps


def step_from_wire(config: AnygateConfig, wire: list[str]) -> Step | None:
    """The step a job's stored plan names, or None if config no longer has that deployment."""
    alias, provider, model = wire[:3]
    account = wire[3] if len(wire) > 3 else None
    route = config.models.get(alias)
    if route is None:
        return None
    for dep in route.deployments:
        if dep.provider == provider and dep.model == model and dep.account == account:
            return Step(alias, dep)
    return None


def encode_plan(steps: list[Step], *, alias: str) -> str:
    """``alias|provider|model`` per step (``alias|provider|model|account`` for an account's
    deployment), ``;``-separated: short enough that a one- or two-step
    plan keeps the job hash listpack-encoded (a JSON array would not). The common plan, the
    alias's own single deployment, is stored as nothing at all: the worker derives it again
    with ``deployment_for`` (a one-step plan means a one-deployment route without fallbacks)."""
    if len(steps) == 1 and steps[0].alias == alias:
        return ""
    return ";".join("|".join(step.to_wire()) for step in steps)


def decode_plan(raw: str) -> list[list[str]]:
    """Each step's wire list: three elements, or four with an account. The model is the third
    element whatever it holds; a fourth ``|`` part is an account only if it looks like one
    (account names never contain ``|``), so a plan written before accounts reads as before."""
    return [_step_parts(part) for part in raw.split(";") if part]


def _step_parts(part: str) -> list[str]:
    parts = part.split("|", 2)
    if len(parts) == 3 and "|" in parts[2]:
        model, account = parts[2].rsplit("|", 1)
        if _ACCOUNT.match(account):
            return [parts[0], parts[1], model, account]
    return parts


_ACCOUNT = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


def deployment_for(config: AnygateConfig, model: str, pool: str) -> Deployment | None:
    """A job queued without a plan (direct broker use) is served by its pool's deployment."""
    route = config.models.get(model)
    if route is None:
        return None
    return next((d for d in route.deployments if d.provider == pool), None)
