"""Where ``anygate keys`` and ``anygate tenants`` make their changes: the admin API of a running
gateway, or Redis directly (docs/cli.md#keys-and-tenants).

The admin API is the way in once a gateway runs: it needs only a URL and an admin key (from the
flags, the environment or ``.anygate/dev.env``), never where Redis is. Redis directly is for a
fresh install with no admin key yet, and is chosen only when asked for: ``--redis-url``, or a
configuration named by ``$ANYGATE_CONFIG`` / ``$ANYGATE__REDIS__URL``. Nothing falls back to a
Redis on localhost.

Which one, in order: ``--redis-url``; a URL and an admin key given as flags or in the
environment; ``$ANYGATE_CONFIG`` or ``$ANYGATE__REDIS__URL``; a URL and an admin key from the
env file. Both backends answer the admin API's objects (``to_api()``), so the commands print the
same either way.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import click

from anygate.broker import KeySpace, create_redis
from anygate.broker.errors import AnygateError
from anygate.broker.tenant_store import TenantStore
from anygate.broker.tenants import ADMIN, TENANT_SCOPES
from anygate.config import ConfigError, TenantSettings, load_config
from anygate.ops.admin_client import AdminClient
from anygate.ops.cli_context import (
    DEV_ENV_FILE,
    Connection,
    ContextError,
    Sources,
    admin_connection,
)

T = TypeVar("T")
REDIS_ENV = ("ANYGATE_CONFIG", "ANYGATE__REDIS__URL")


class Backend(Protocol):
    def create_key(
        self,
        tenant: str | None,
        *,
        name: str,
        scopes: tuple[str, ...] | None,
        expires_at: float | None,
        rpm: int | None,
    ) -> tuple[dict[str, Any], str]:
        """The new key's record and the key itself (shown once)."""
        ...

    def list_keys(self, tenant: str | None) -> list[dict[str, Any]]: ...

    def revoke_key(self, key_id: str) -> dict[str, Any]: ...

    def create_tenant(self, tenant_id: str, weight: int) -> dict[str, Any]: ...

    def list_tenants(self) -> list[dict[str, Any]]: ...


class ApiBackend:
    """Through ``/admin/keys`` and ``/admin/tenants``; every API process sees a change at once."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def _call(self, action: Callable[[AdminClient], T]) -> T:
        with AdminClient(self._connection) as admin:
            return action(admin)

    def create_key(
        self,
        tenant: str | None,
        *,
        name: str,
        scopes: tuple[str, ...] | None,
        expires_at: float | None,
        rpm: int | None,
    ) -> tuple[dict[str, Any], str]:
        spec: dict[str, Any] = {"tenant": tenant, "name": name}
        if scopes:
            spec["scopes"] = list(scopes)
        if expires_at is not None:
            spec["expires_at"] = expires_at
        if rpm is not None:
            spec["rpm"] = rpm
        record = self._call(lambda admin: admin.post("/admin/keys", spec))
        key = str(record.pop("key"))
        return record, key

    def list_keys(self, tenant: str | None) -> list[dict[str, Any]]:
        params = {"tenant": tenant} if tenant else {}
        return self._call(lambda admin: admin.list_all("/admin/keys", params))

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        return self._call(
            lambda admin: admin.post(f"/admin/keys/{quote(key_id, safe='')}/revoke", {})
        )

    def create_tenant(self, tenant_id: str, weight: int) -> dict[str, Any]:
        spec = {"id": tenant_id, "weight": weight}
        return self._call(lambda admin: admin.post("/admin/tenants", spec))

    def list_tenants(self) -> list[dict[str, Any]]:
        return self._call(lambda admin: admin.list_all("/admin/tenants"))


class RedisBackend:
    """``TenantStore`` on the configured Redis, announcing each change to the API processes as
    the admin API does."""

    def __init__(self, redis_url: str | None) -> None:
        environ = dict(os.environ)
        if redis_url:
            environ["ANYGATE__REDIS__URL"] = redis_url
        try:
            self._config = load_config(environ=environ)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None

    def _run(self, action: Callable[[TenantStore], Awaitable[T]]) -> T:
        async def run() -> T:
            redis = create_redis(self._config.redis)
            try:
                return await action(TenantStore(redis, KeySpace.of(self._config)))
            finally:
                await redis.aclose()

        try:
            return asyncio.run(run())
        except AnygateError as exc:
            raise click.ClickException(exc.message) from None

    def create_key(
        self,
        tenant: str | None,
        *,
        name: str,
        scopes: tuple[str, ...] | None,
        expires_at: float | None,
        rpm: int | None,
    ) -> tuple[dict[str, Any], str]:
        chosen = (ADMIN,) if tenant is None else (scopes or TENANT_SCOPES)
        record, key = self._run(
            lambda store: store.create_key(
                tenant, name=name, scopes=chosen, expires_at=expires_at, rpm=rpm, source="cli"
            )
        )
        return record.to_api(), key

    def list_keys(self, tenant: str | None) -> list[dict[str, Any]]:
        return [r.to_api() for r in self._run(lambda store: store.list_keys(tenant))]

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        record = self._run(lambda store: store.revoke_key(key_id))
        return dict(record.to_api())

    def create_tenant(self, tenant_id: str, weight: int) -> dict[str, Any]:
        settings = TenantSettings(weight=weight)
        record = self._run(lambda store: store.create_tenant(tenant_id, settings))
        return dict(record.to_api())

    def list_tenants(self) -> list[dict[str, Any]]:
        return [r.to_api() for r in self._run(lambda store: store.all_tenants())]


def choose(redis_url: str | None, sources: Sources, environ: Mapping[str, str]) -> str:
    """``"redis"`` or ``"api"``, by the order in this module's docstring; a clear error when
    neither is to be had."""
    if redis_url:
        return "redis"
    if admin_connection(sources, files=False) is not None:
        return "api"
    if any(environ.get(name) for name in REDIS_ENV):
        return "redis"
    if admin_connection(sources, files=True) is not None:
        return "api"
    raise ContextError(
        "cannot reach the gateway: set ANYGATE_URL and ANYGATE_ADMIN_KEY (or --url and "
        f"--admin-key, or run this where `anygate dev` wrote {DEV_ENV_FILE}: looked in "
        f"{sources.file_path}) to use the admin API; or pass --redis-url, or set ANYGATE_CONFIG, "
        "to write to Redis directly"
    )


def backend_for(redis_url: str | None, sources: Sources) -> Backend:
    if choose(redis_url, sources, os.environ) == "redis":
        return RedisBackend(redis_url)
    connection = admin_connection(sources, files=True)
    assert connection is not None
    return ApiBackend(connection)
