"""Redis clients built from config: one pool for commands, shared by every task of a process."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar, cast

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from anygate.config import RedisConfig


def create_redis(config: RedisConfig) -> Redis:
    """A client that decodes replies to ``str`` and retries a dropped connection briefly.

    Retries are few and short on purpose: while Redis is down, the API must answer 503 quickly
    rather than hang (SPEC §6); scripts are atomic, so a retried call is either fully applied
    or not at all (a retried enqueue may run twice only if the reply was lost, which the
    idempotency key covers for clients that send one).
    """
    client: Redis = Redis.from_url(
        config.url,
        decode_responses=True,
        socket_timeout=config.socket_timeout_s,
        socket_connect_timeout=min(config.socket_timeout_s, 2.0),
        max_connections=config.max_connections,
        health_check_interval=30,
        retry=Retry(EqualJitterBackoff(cap=0.2, base=0.02), retries=2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    return client


T = TypeVar("T")


def awaited(value: Awaitable[T] | T) -> Awaitable[T]:
    """redis-py types async commands as ``Awaitable[T] | T``; an async client returns the former."""
    return cast("Awaitable[T]", value)
