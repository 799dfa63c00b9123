"""Redis clients built from config: one pool for commands, shared by every task of a process."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar, cast

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff
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


def create_redis(config: RedisConfig) -> Redis:
    """A client that decodes replies to ``str`` and retries a dropped connection briefly.

    Retries are few and short on purpose: while Redis is down, the API must answer 503 quickly
    rather than hang (SPEC §6); scripts are atomic, so a retried call is either fully applied
    or not at all (a retried enqueue may run twice only if the reply was lost, which the
    idempotency key covers for clients that send one).
    """
    client: Redis = Redis.from_url(config.url, **redis_options(config))
    return client


def redis_options(config: RedisConfig) -> dict[str, Any]:
    """``create_redis``'s connection options, for a client of another kind (arq's)."""
    extra: dict[str, Any] = {}
    if config.url.startswith("redis://"):
        extra["connection_class"] = CPackedConnection  # TLS and unix sockets keep their own
    return {
        **extra,
        "decode_responses": True,
        "socket_timeout": config.socket_timeout_s,
        "socket_connect_timeout": min(config.socket_timeout_s, 2.0),
        "max_connections": config.max_connections,
        "health_check_interval": 30,
        "retry": Retry(EqualJitterBackoff(cap=0.2, base=0.02), retries=2),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
    }


T = TypeVar("T")


def awaited(value: Awaitable[T] | T) -> Awaitable[T]:
    """redis-py types async commands as ``Awaitable[T] | T``; an async client returns the former."""
    return cast("Awaitable[T]", value)
