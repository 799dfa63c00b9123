"""The Starlette application: thin handlers over the broker, errors mapped once at the edge."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from anygate.api import (
    admin,
    admin_deployments,
    admin_ops,
    batches,
    console,
    files,
    gemini_compat,
    health,
    jobs,
    limits,
    metrics_endpoint,
    openai_compat,
    openapi,
    usage,
)
from anygate.api.errors import EXCEPTION_HANDLERS
from anygate.api.gateway import Gateway
from anygate.api.middleware import RequestIdMiddleware
from anygate.api.redis_watch import RedisWatch
from anygate.api.replication_wait import ReplicationWaitMiddleware
from anygate.api.request_observer import RequestObserver
from anygate.api.startup import rebuild_gateway, start_up
from anygate.api.tracing_middleware import TracingMiddleware
from anygate.broker import Subscriptions, create_redis
from anygate.broker.redis_link import RedisLink
from anygate.config import AnygateConfig
from anygate.config.reload import ConfigState, Problem, ReloadPlan
from anygate.config.reloader import ConfigReloader, ReloadRefusedError
from anygate.telemetry import record_config, tracing


def create_app(config: AnygateConfig, *, watch_config: bool = False) -> Starlette:
    """``watch_config``: reload the config when its file changes, besides on SIGHUP."""
    for tenant in config.tenants:  # resolve key references now: a bad one fails start-up
        for ref in tenant.api_keys:
            ref.resolve()
    config_state = ConfigState(config)

    async def apply_config(new: AnygateConfig, _plan: ReloadPlan) -> None:
        """Build the new gateway, then swap it in: requests that started keep the old one."""
        app.state.gateway = await rebuild_gateway(gateway_of_app(app), new)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        """Serve at once; ``api/startup.py`` makes the process ready once Redis answers."""
        if tracing.enabled:
            tracing.spans.start("anygate-api")
        wait_s = config.server.redis_wait_s
        redis = create_redis(config.redis, wait_s=wait_s)
        link = app.state.redis_link = RedisLink("api")
        # the watch pings on connections of its own: a burst of requests holding every pooled
        # connection is not an outage
        watch = RedisWatch(link, create_redis(config.redis, wait_s=wait_s, max_connections=4))
        subscriptions = Subscriptions(redis, link, confirm_s=wait_s)
        await subscriptions.start()
        background = [
            asyncio.create_task(link.watch(watch.redis), name="redis-watch"),
            asyncio.create_task(
                start_up(app.state, config, redis, subscriptions, watch), name="start-up"
            ),
        ]
        app.state.config_state = config_state
        reloader = ConfigReloader(
            config_state, apply_config, process="api", observe=record_config, watch=watch_config
        )
        reloader.start()
        try:
            yield
        finally:
            await reloader.stop()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await watch.stop()
            await watch.redis.aclose()
            await subscriptions.close()
            await redis.aclose()
            if tracing.enabled:
                tracing.spans.shutdown()

    middleware = [Middleware(TracingMiddleware)] if tracing.enabled else []
    middleware += [
        Middleware(  # outermost but the trace: sees every answer
            RequestObserver, logging=config.logging, metrics=config.metrics.enabled
        ),
        Middleware(RequestIdMiddleware),
        Middleware(limits.RequestLimitsMiddleware, server=config.server),
    ]
    if config.redis.replicas_to_ack():  # strict durability with replicas: docs/high-availability.md
        middleware.append(Middleware(ReplicationWaitMiddleware))
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
    app = Starlette(
        routes=[
            *health.ROUTES,
            *jobs.ROUTES,
            *openai_compat.ROUTES,
            *files.ROUTES,
            *batches.ROUTES,
            *gemini_compat.ROUTES,
            *admin.ROUTES,
            *admin_ops.ROUTES,
            *admin_deployments.ROUTES,
            *usage.ROUTES,
            *metrics_endpoint.routes(config),
            *openapi.routes(config),
            *console.routes(config),
        ],
        middleware=middleware,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    return app


def gateway_of_app(app: Starlette) -> Gateway:
    """The gateway to rebuild on a reload; a process still starting takes none (its start-up
    builds from the config it started with)."""
    gateway: Gateway | None = getattr(app.state, "gateway", None)
    if gateway is None:
        raise ReloadRefusedError(
            [
                Problem(
                    "(process)",
                    "still starting (waiting for Redis): send SIGHUP again once "
                    "/readyz answers ready",
                )
            ]
        )
    return gateway
