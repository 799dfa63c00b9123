"""``GET /admin/deployments`` (docs/api.md#admin-api): each configured deployment's health as
every worker shares it, its circuit breaker and its 429 cool-down.

The workers keep that state in Redis (``health-1.lua``, read here with its ``peek``, which
changes nothing); this process's own view (``Gateway.health``) follows the announcements and
may lag, so the answer reads Redis. One script call per deployment, all at once: a config
names tens of deployments, not thousands.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from anygate.api.gateway import gateway_of
from anygate.api.paging import list_page
from anygate.broker.routing import deployment_key
from anygate.broker.script_calls.health import BreakerState, HealthPeek
from anygate.config import AnygateConfig, Deployment

BREAKER_NAMES = {
    BreakerState.CLOSED: "closed",
    BreakerState.OPEN: "open",
    BreakerState.HALF: "half_open",
}


@dataclass(frozen=True, slots=True)
class ConfiguredDeployment:
    """One upstream model of one provider, with every alias that routes to it."""

    id: str
    """The name its health is kept under (``routing.deployment_key``)."""
    provider: str
    model: str
    account: str | None
    """Which of the provider's accounts (docs/operations.md#accounts); None: the provider's."""
    aliases: tuple[str, ...]


def configured_deployments(config: AnygateConfig) -> list[ConfiguredDeployment]:
    """Each deployment once, in id order, however many aliases list it."""
    found: dict[str, tuple[Deployment, list[str]]] = {}
    for alias, route in config.models.items():
        for dep in route.deployments:
            _dep, aliases = found.setdefault(deployment_key(dep), (dep, []))
            if alias not in aliases:
                aliases.append(alias)
    return [
        ConfiguredDeployment(key, dep.provider, dep.model, dep.account, tuple(sorted(aliases)))
        for key, (dep, aliases) in sorted(found.items())
    ]


def summary_state(peek: HealthPeek) -> str:
    """One word for the deployment: ``cooling_down`` (a 429 paused it), ``open`` /
    ``half_open`` (its breaker), ``recovering`` (calls ramp back up after a pause), ``ok``."""
    if peek.cool_ms > 0:
        return "cooling_down"
    if peek.state is not BreakerState.CLOSED:
        return BREAKER_NAMES[peek.state]
    if peek.settling:
        return "recovering"
    return "ok"


def deployment_to_api(dep: ConfiguredDeployment, peek: HealthPeek) -> dict[str, Any]:
    return {
        "object": "deployment",
        "id": dep.id,
        "provider": dep.provider,
        "pool": dep.provider,  # a pool per provider
        "model": dep.model,
        "account": dep.account,
        "aliases": list(dep.aliases),
        "state": summary_state(peek),
        "breaker": BREAKER_NAMES[peek.state],
        "breaker_open_for_s": peek.open_ms / 1000 if peek.state is BreakerState.OPEN else None,
        "cooling_down_for_s": peek.cool_ms / 1000 if peek.cool_ms > 0 else None,
        "recent_failures": peek.dirty,
        "recovering": peek.settling,
    }


async def deployments(request: Request) -> Response:
    gw = gateway_of(request)
    await gw.auth.admin(request)
    found = configured_deployments(gw.config)
    peeks = await asyncio.gather(*(gw.broker.peek_health(d.id) for d in found))
    data = [deployment_to_api(d, p) for d, p in zip(found, peeks, strict=True)]
    return list_page(data, breaker_enabled=gw.config.queue.breaker.enabled)


ROUTES = [Route("/admin/deployments", deployments, methods=["GET"])]
