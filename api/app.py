"""The Starlette application: thin handlers over the broker, errors mapped once at the edge."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from anygate.api import (
    admin,
    admin_ops,
    batches,
    files,
    gemini_compat,
    health,
    jobs,
    limits,
    openai_compat,
)
from anygate.api.auth import Authenticator
from anygate.api.errors import EXCEPTION_HANDLERS
from anygate.api.gateway import Gateway
from anygate.api.middleware import RequestIdMiddleware
from anygate.api.planning import Planner
from anygate.api.replies import ReplyRouter
from anygate.broker import Broker, Subscriptions, create_redis
from anygate.broker.deployment_health import HealthView
from anygate.broker.durability import DurabilityBarrier
from anygate.broker.tenant_store import TenantStore
from anygate.config import AnygateConfig


def create_app(config: AnygateConfig) -> Starlette:
    for tenant in config.tenants:  # resolve key references now: a bad one fails start-up
        for ref in tenant.api_keys:
            ref.resolve()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        redis = create_redis(config.redis)
        subscriptions = Subscriptions(redis)
        await subscriptions.start()
        broker = Broker(redis, config)
        tenants = TenantStore(redis, broker.keys)
        await tenants.seed(config)
        auth = Authenticator(config, tenants, broker)
        await subscriptions.listen(broker.keys.auth_channel, auth.forget)
        replies = ReplyRouter(broker.keys)
        await replies.start(subscriptions)
        health = HealthView()
        await subscriptions.listen(broker.keys.health_channel, health.apply)
        app.state.gateway = Gateway(
            config, redis, broker, subscriptions, auth, tenants, Planner(config, redis, health),
            replies, DurabilityBarrier(redis, config.redis.durability),
        )  # fmt: skip
        try:
            yield
        finally:
            await subscriptions.close()
            await redis.aclose()

    middleware = [
        Middleware(RequestIdMiddleware),
        Middleware(limits.RequestLimitsMiddleware, server=config.server),
    ]
    if config.server.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(config.server.cors_origins),
                allow_methods=["GET", "POST", "PATCH", "DELETE"],
                allow_headers=["*"],
                expose_headers=["x-request-id", "x-anygate-job-id", "x-anygate-cache", "location"],
            )
        )
    return Starlette(
        routes=[
            *health.ROUTES,
            *jobs.ROUTES,
            *openai_compat.ROUTES,
            *files.ROUTES,
            *batches.ROUTES,
            *gemini_compat.ROUTES,
            *admin.ROUTES,
            *admin_ops.ROUTES,
        ],
        middleware=middleware,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
