"""An API process starts serving at once and becomes ready once Redis is.

``/healthz`` answers from the first moment. Everything else answers 503 with Retry-After
(``gateway_of``) until Redis answers and the start-up work is done: the config file's tenants
and keys seeded, the permanent subscriptions (key changes, the process's reply channel,
deployment health) confirmed. A Redis that is down when the process starts is waited for with
jittered backoff (``broker/redis_link.py``), so an API started before its Redis (compose,
Kubernetes) becomes ready later instead of exiting. Only an error that waiting cannot fix (a
wrong Redis password, a refused command) stops the process.
"""

from __future__ import annotations

import signal
from dataclasses import replace

import structlog
from redis.asyncio import Redis
from starlette.datastructures import State

from anygate.api.auth import Authenticator
from anygate.api.gateway import Gateway
from anygate.api.redis_watch import RedisWatch
from anygate.api.replies import ReplyRouter
from anygate.broker import Broker, Subscriptions
from anygate.broker.deployment_health import HealthView
from anygate.broker.durability import barrier_for
from anygate.broker.tenant_store import TenantStore
from anygate.config import AnygateConfig
from anygate.config.reload import Problem, secret_problems
from anygate.config.reloader import ReloadRefusedError
from anygate.core.planning import Planner

log = structlog.get_logger(__name__)


async def build_gateway(
    config: AnygateConfig, redis: Redis, subscriptions: Subscriptions, watch: RedisWatch
) -> Gateway:
    """Each step is retried alone while Redis is away; each can run twice harmlessly (seeding
    skips what exists, subscribing again is confirmed again)."""
    link = watch.link
    broker = Broker(redis, config)
    tenants = TenantStore(redis, broker.keys)
    await link.retry(lambda: tenants.seed(config))
    auth = Authenticator(config, tenants, broker, watch)
    await link.retry(lambda: subscriptions.listen(broker.keys.auth_channel, auth.forget))
    replies = ReplyRouter(broker.keys)
    await link.retry(lambda: replies.start(subscriptions))
    health = HealthView()
    await link.retry(lambda: subscriptions.listen(broker.keys.health_channel, health.apply))
    planner = Planner(config, redis, health)
    barrier = barrier_for(redis, config.redis)
    return Gateway(
        config,
        redis,
        broker,
        subscriptions,
        auth,
        tenants,
        planner,
        replies,
        watch,
        barrier,
        health,
    )


def api_secret_problems(config: AnygateConfig) -> list[Problem]:
    """The key references the API resolves: the config tenants' and the operators'."""
    refs = [
        (f"tenants[{i}].api_keys[{j}]", ref)
        for i, tenant in enumerate(config.tenants)
        for j, ref in enumerate(tenant.api_keys)
    ]
    refs += [(f"admin_api_keys[{j}]", ref) for j, ref in enumerate(config.admin_api_keys)]
    return secret_problems(refs)


async def rebuild_gateway(gw: Gateway, config: AnygateConfig) -> Gateway:
    """A config reload's build step (docs/operations.md#reloading-configuration): everything the
    gateway derives from config (broker, key lookup, planner with its routes and prices),
    built anew; the process's own connections, subscriptions, reply router, Redis watch and
    deployment health carry over. Nothing is swapped here: the caller swaps the returned
    gateway in at once, so a request runs wholly with the old set or wholly with the new.

    New config tenants and keys are seeded and the key-change channel handed to the new
    lookup before that; both are idempotent, so a reload that fails part-way (Redis away)
    leaves nothing to undo."""
    problems = api_secret_problems(config)
    if problems:
        raise ReloadRefusedError(problems)
    broker = Broker(gw.redis, config)
    tenants = TenantStore(gw.redis, broker.keys)
    auth = Authenticator(config, tenants, broker, gw.watch)
    planner = Planner(config, gw.redis, gw.health)
    await tenants.seed(config)
    await gw.subscriptions.listen(broker.keys.auth_channel, auth.forget)
    return replace(gw, config=config, broker=broker, tenants=tenants, auth=auth, planner=planner)


async def start_up(
    state: State,
    config: AnygateConfig,
    redis: Redis,
    subscriptions: Subscriptions,
    watch: RedisWatch,
) -> None:
    """The lifespan's background task: ``state.gateway`` once ready. A failure that is not an
    outage shuts the server down (SIGTERM to itself: uvicorn's own graceful path)."""
    try:
        state.gateway = await build_gateway(config, redis, subscriptions, watch)
    except Exception:
        log.exception("start-up failed; stopping")
        signal.raise_signal(signal.SIGTERM)
        return
    log.info("api ready")
