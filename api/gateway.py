"""Everything a request handler needs, built once per process and shared through ``app.state``."""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.asyncio import Redis
from starlette.requests import Request

from anygate.api.auth import Authenticator
from anygate.api.redis_watch import RedisWatch
from anygate.api.replies import ReplyRouter
from anygate.broker import Broker, Subscriptions
from anygate.broker.deployment_health import HealthView
from anygate.broker.durability import DurabilityBarrier
from anygate.broker.errors import ServiceUnavailableError
from anygate.broker.tenant_store import TenantStore
from anygate.config import AnygateConfig
from anygate.core.planning import Planner


@dataclass
class Gateway:
    config: AnygateConfig
    redis: Redis
    broker: Broker
    subscriptions: Subscriptions
    auth: Authenticator
    tenants: TenantStore
    planner: Planner
    replies: ReplyRouter
    watch: RedisWatch
    barrier: DurabilityBarrier
    """Awaited before a client hears a terminal state read from pub/sub (strict mode)."""
    health: HealthView = field(default_factory=HealthView)
    """Deployment health as announced: kept across config reloads (``startup.rebuild_gateway``)."""


def gateway_of(request: Request) -> Gateway:
    """The process's gateway; a 503 with Retry-After until start-up is done (``startup.py``)."""
    gateway: Gateway | None = getattr(request.app.state, "gateway", None)
    if gateway is None:
        raise ServiceUnavailableError(
            "the gateway is starting: it waits for its job store; retry shortly", retry_after=1
        )
    return gateway
