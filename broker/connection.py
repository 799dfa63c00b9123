"""Redis clients built from config: one pool for commands, shared by every task of a process.

The one place that turns ``redis`` settings into connections: a single server (``redis.url``)
or the master behind Sentinel (``redis.mode: sentinel``), over TLS or not, with credentials from
secret references (docs/high-availability.md)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from typing import Any, TypeVar, cast

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import (
    BlockingConnectionPool,
    Connection,
    ConnectionPool,
    SSLConnection,
    parse_url,
)
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import (
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)
from redis.backoff import EqualJitterBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from anygate.config import RedisConfig, RedisTLSConfig


class CPackedMixin:
    """redis-py's asyncio connection packs every command in Python (~15 µs for a 17-argument
    script call, the largest cost left in a worker's loop); hiredis, already installed as
    redis-py's parser, packs the same bytes in C in ~2 µs. Mixed into each connection kind
    (plain, TLS, Sentinel-managed): packing does not depend on the transport."""

    def pack_command(self, *args: Any) -> list[bytes]:
        first = args[0]
        if (isinstance(first, str) and " " in first) or (
            isinstance(first, bytes) and b" " in first
        ):
            args = (*first.split(), *args[1:])  # 'CONFIG GET' → two arguments, as redis-py does
        try:
            return [hiredis.pack_command(args)]
        except TypeError:  # a type hiredis does not pack (memoryview…): redis-py's own way
            packed: list[bytes] = super().pack_command(*args)  # type: ignore[misc]
            return packed

    async def _send_packed_command(self, command: Any) -> None:
        """Under uvloop, writing to a connection the server has just closed (a master killed
        as the connection opened, a failover) raises ``RuntimeError`` ("the handler is
        closed"), which redis-py passes through as it is, so no retry and no outage handling
        sees it; as an ``OSError`` it becomes redis-py's ``ConnectionError`` like any other
        broken connection (the connection is dropped and the call retried)."""
        try:
            await super()._send_packed_command(command)  # type: ignore[misc]
        except RuntimeError as exc:
            if "closed" not in str(exc):
                raise
            raise ConnectionResetError(f"the connection is closed ({exc})") from exc


class CPackedConnection(CPackedMixin, Connection):
    """A plain TCP connection (``redis://``)."""


class CPackedSSLConnection(CPackedMixin, SSLConnection):
    """A TLS connection (``rediss://``)."""


class CPackedSentinelConnection(CPackedMixin, SentinelManagedConnection):
    """A connection to whichever node the sentinels name as master: it asks them on each
    (re)connect, and turns a ``READONLY`` reply (a master demoted under it) into a dropped
    connection, which the client's retry opens again on the new master."""


class CPackedSentinelSSLConnection(CPackedMixin, SentinelManagedSSLConnection):
    """The same over TLS."""


MASTER_CHECK_S = 1.0
"""How often a Sentinel pool in use asks the sentinels which node is master."""


class FollowingSentinelConnectionPool(SentinelConnectionPool):
    """redis-py's Sentinel pool asks the sentinels only when a connection (re)connects, so a
    connection to a master that was demoted while it stayed up (``SENTINEL FAILOVER``, a
    partition that heals) keeps writing there until the old master answers ``READONLY``, and
    every write it accepts meanwhile is discarded when it resyncs from the new master. This
    pool also asks at most every ``MASTER_CHECK_S`` while it is used (in the background, never
    delaying a command), and a connection handed out that still points at a former master is
    reconnected first. Writes already on their way to the old master are not saved by this:
    docs/high-availability.md says what a failover can lose."""

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]
        self._checked_at = 0.0
        self._check: asyncio.Task[None] | None = None

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        self._check_master_soon()
        connection = await super().get_connection(*args, **kwargs)
        if is_stale(self, connection):
            try:
                await connection.disconnect()
                await self.ensure_connection(connection)
            except BaseException:
                await self.release(connection)
                raise
        return connection

    def _check_master_soon(self) -> None:
        now = time.monotonic()
        if now - self._checked_at < MASTER_CHECK_S or (
            self._check is not None and not self._check.done()
        ):
            return
        self._checked_at = now
        self._check = asyncio.get_running_loop().create_task(self._check_master())

    async def _check_master(self) -> None:
        # a failed look-up changes nothing: connections fail and reconnect on their own
        with contextlib.suppress(RedisError, OSError):
            await self.get_master_address()  # type: ignore[no-untyped-call]

    async def disconnect(self, inuse_connections: bool = True) -> None:
        check = self._check
        if inuse_connections and check is not None and check is not asyncio.current_task():
            check.cancel()
        await super().disconnect(inuse_connections)


class BlockingSentinelConnectionPool(FollowingSentinelConnectionPool, BlockingConnectionPool):
    """The following Sentinel pool with the blocking pool's behaviour ``create_redis`` relies
    on (wait for a free connection; connect outside the pool's lock): they compose, the
    Sentinel pool only choosing the address and dropping connections to a former master."""


def is_stale(pool: object, connection: Any) -> bool:
    """Whether ``connection`` is open to a node its Sentinel pool no longer knows as master
    (always False for other pools, and for None: a cluster client has no single pool). The
    pub/sub reader checks its connection with this too."""
    master = getattr(pool, "master_address", None)
    return (
        master is not None
        and bool(connection.is_connected)
        and (connection.host, connection.port) != master
    )


def create_redis(
    config: RedisConfig, *, wait_s: float | None = None, max_connections: int | None = None
) -> Redis:
    """A client that decodes replies to ``str`` and retries a dropped connection briefly.

    Every client of every process is built here (or, for arq's, from ``connection_pool``), so
    that the connection mode (``redis.mode``), TLS and credentials apply to all of them.

    Retries are few and short on purpose: scripts are atomic, so a retried call is either fully
    applied or not at all (a retried enqueue may run twice only if the reply was lost, which the
    idempotency key covers for clients that send one). Workers wait out longer outages on their
    own terms (``redis_link.RedisLink.retry``).

    ``wait_s`` (the API's ``server.redis_wait_s``): no call waits longer than this for Redis,
    and a timed-out call is not retried, so that a request answers 503 within that bound rather
    than hang while Redis is paused or unreachable (docs/architecture.md, "Redis outages"). A
    dropped connection (Redis restarted, or a failover) is still retried once at once, on a
    fresh one.

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

        return create_cluster(config.url, config.namespace, {**options, **_auth_options(config)})
    client: Redis = Redis.from_pool(connection_pool(config, options))
    return client


def connection_pool(
    config: RedisConfig, options: dict[str, Any], *, blocking: bool = True
) -> ConnectionPool:
    """A pool for ``config``'s mode with ``options`` (``redis_options``, perhaps adjusted):
    ``standalone`` connects to ``redis.url``; ``sentinel`` asks the sentinels for the master
    on every new connection (docs/high-availability.md); ``cluster``: the node at ``redis.url``
    alone (``create_redis`` builds the cluster client itself, docs/scaling.md). ``blocking``:
    wait for a free connection (``create_redis``) rather than fail (arq's client, which never
    holds many)."""
    if config.mode == "sentinel":
        return _sentinel_pool(config, options, blocking=blocking)
    # standalone; with a cluster, the node at ``url`` (the control plane's arq client is given
    # the home slot's node instead: workers/control_runner.py)
    url_options: dict[str, Any] = dict(parse_url(config.url))
    given = url_options.get("connection_class")
    if given is None:
        url_options["connection_class"] = CPackedConnection
    elif given is SSLConnection:
        url_options["connection_class"] = CPackedSSLConnection
        url_options.update(_tls_options(config.tls))
    # ours last: redis.username / redis.password win over the URL's
    merged = {**url_options, **options, **_auth_options(config)}
    if blocking:
        return BlockingConnectionPool(timeout=merged["socket_timeout"], **merged)
    return ConnectionPool(**merged)


def _sentinel_pool(
    config: RedisConfig, options: dict[str, Any], *, blocking: bool
) -> SentinelConnectionPool:
    settings = config.sentinel
    assert settings is not None, "validated: redis.sentinel is set in sentinel mode"
    tls = _tls_options(config.tls) if config.tls is not None else {}
    sentinel_options: dict[str, Any] = {
        "socket_timeout": options["socket_timeout"],
        "socket_connect_timeout": options["socket_connect_timeout"],
        "decode_responses": True,
        "username": settings.username,
        "password": settings.password.resolve().get_secret_value() if settings.password else None,
    }
    if settings.tls:
        sentinel_options.update(ssl=True, **tls)
    # redis-py leaves its Sentinel classes untyped
    sentinels = Sentinel(  # type: ignore[no-untyped-call]
        [_address(node) for node in settings.nodes], sentinel_kwargs=sentinel_options
    )
    connection_class = CPackedSentinelSSLConnection if tls else CPackedSentinelConnection
    merged = {
        **options,
        **tls,
        **_auth_options(config),
        "db": settings.db,
        "connection_class": connection_class,
        "is_master": True,
    }
    if blocking:
        merged["timeout"] = merged["socket_timeout"]
        return BlockingSentinelConnectionPool(settings.master_name, sentinels, **merged)
    return FollowingSentinelConnectionPool(settings.master_name, sentinels, **merged)


def _address(node: str) -> tuple[str, int]:
    host, _, port = node.rpartition(":")
    return host.strip("[]"), int(port)


def _tls_options(tls: RedisTLSConfig | None) -> dict[str, Any]:
    """redis-py's ``ssl_*`` connection arguments. Without a ``tls`` section (plain
    ``rediss://``) the server is still verified, against the system's CAs and by host name
    (redis-py's own default leaves the host name unchecked)."""
    if tls is None:
        return {"ssl_cert_reqs": "required", "ssl_check_hostname": True}
    return {
        "ssl_cert_reqs": "required",
        "ssl_ca_certs": tls.ca_file,
        "ssl_certfile": tls.cert_file,
        "ssl_keyfile": tls.key_file,
        "ssl_check_hostname": tls.check_hostname,
    }


def _auth_options(config: RedisConfig) -> dict[str, Any]:
    """The data nodes' credentials from config (the secret resolved now, never logged)."""
    auth: dict[str, Any] = {}
    if config.username is not None:
        auth["username"] = config.username
    if config.password is not None:
        auth["password"] = config.password.resolve().get_secret_value()
    return auth


def redis_options(config: RedisConfig, *, wait_s: float | None = None) -> dict[str, Any]:
    """``create_redis``'s connection options, also for a client of another kind (arq's, through
    ``connection_pool``): timeouts, retries, decoding. Address, TLS and credentials are the
    pool's (``connection_pool``)."""
    timeout = config.socket_timeout_s if wait_s is None else min(wait_s, config.socket_timeout_s)
    if wait_s is None:
        retry = Retry(EqualJitterBackoff(cap=0.2, base=0.02), retries=2)
        retry_on: list[type[Exception]] = [RedisConnectionError, RedisTimeoutError]
    else:
        retry, retry_on = Retry(NoBackoff(), retries=1), [RedisConnectionError]
    return {
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
