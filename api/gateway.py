"""Everything a request handler needs, built once per process and shared through ``app.state``."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from starlette.requests import Request

from anygate.api.auth import Authenticator
from anygate.api.planning import Planner
from anygate.api.replies import ReplyRouter
from anygate.broker import Broker, Subscriptions
from anygate.broker.durability import DurabilityBarrier
from anygate.broker.tenant_store import TenantStore
from anygate.config import AnygateConfig


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
    barrier: DurabilityBarrier
    """Awaited before a client hears a terminal state read from pub/sub (strict mode)."""


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway
