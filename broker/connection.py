"""Redis clients built from config: one pool for commands, shared by every task of a process."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar, cast

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import BlockingConnectionPool, Connection
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from anygate.config import RedisConfig


class CPackedConnection(Connection):
    """redis-py's asyncio connection packs every command in Python (~15 µs for a 17-argument
    script call, the largest cost left in a worker's loop); hiredis, already installed as
    redis-py's parser, packs the same bytes in C in ~2 µs."""

    def pack_command(self, *args: Any) -> list[bytes]:
        first = args[0]
        if (isinstance(first, str) and " " in first) or (
            isinstance(first, bytes) and b" " in first
        ):
            args = (*first.split(), *args[1:])  # 'CONFIG GET' → two arguments, as redis-py does
        try:
            return [hiredis.pack_command(args)]
        except TypeError:  # a type hiredis does not pack (memoryview…): redis-py's own way
            packed: list[bytes] = super().pack_command(*args)
            return packed


def create_redis(
    config: RedisConfig, *, wait_s: float | None = None, max_connections: int | None = None
) -> Redis:
    """A client that decodes replies to ``str`` and retries a dropped connection briefly.

    Retries are few and short on purpose: scripts are atomic, so a retried call is either fully
    applied or not at all (a retried enqueue may run twice only if the reply was lost, which the
    idempotency key covers for clients that send one). Workers wait out longer outages on their
    own terms (``redis_link.RedisLink.retry``).

    ``wait_s`` (the API's ``server.redis_wait_s``): no call waits longer than this for Redis,
    and a timed-out call is not retried, so that a request answers 503 within that bound rather
    than hang while Redis is paused or unreachable (docs/architecture.md, "Redis outages"). A
    dropped connection (Redis restarted) is still retried once at once, on a fresh one.

    A caller waits (up to the same timeout) for a free connection instead of failing at once
    when every one is busy (a burst of 500 submits on 256 connections), and a new connection is
    set up outside the pool's lock: redis-py's plain pool holds the lock while it connects, so on
    a Redis that accepts connections but does not answer (paused) every caller queued behind the
    one connecting, each for a full timeout.
    """
    options = redis_options(config, wait_s=wait_s)
    if max_connections is not None:
        options["max_connections"] = max_connections
    if config.mode == "cluster":
        from anygate.broker.cluster_connection import create_cluster  # noqa: PLC0415 - a cycle

        return create_cluster(config.url, config.namespace, options)
    pool = BlockingConnectionPool.from_url(config.url, timeout=options["socket_timeout"], **options)
    client: Redis = Redis.from_pool(pool)
    return client


def redis_options(config: RedisConfig, *, wait_s: float | None = None) -> dict[str, Any]:
    """``create_redis``'s connection options, also for a client of another kind (arq's)."""
    extra: dict[str, Any] = {}
    if config.url.startswith("redis://"):
        extra["connection_class"] = CPackedConnection  # TLS and unix sockets keep their own
    timeout = config.socket_timeout_s if wait_s is None else min(wait_s, config.socket_timeout_s)
    if wait_s is None:
        retry = Retry(EqualJitterBackoff(cap=0.2, base=0.02), retries=2)
        retry_on: list[type[Exception]] = [RedisConnectionError, RedisTimeoutError]
    else:
        retry, retry_on = Retry(NoBackoff(), retries=1), [RedisConnectionError]
    return {
        **extra,
        "decode_responses": True,
        "socket_timeout": timeout,
        "socket_connect_timeout": min(timeout, 2.0),
        "max_connections": config.max_connections,
        # No health-check PING: redis-py sends it from inside a new connection's own set-up,
        # and on a Redis that accepts connections but does not answer (paused) that recursion
        # waited without end, past every timeout. A dropped connection is retried anyway.
        "health_check_interval": 0,
        "retry": retry,
        "retry_on_error": retry_on,
    }


T = TypeVar("T")


def awaited(value: Awaitable[T] | T) -> Awaitable[T]:
    """redis-py types async commands as ``Awaitable[T] | T``; an async client returns the former."""
    return cast("Awaitable[T]", value)
