"""Tenants and API keys in Redis: the admin API and the CLI write here, every API replica reads.

Each change publishes on the ``auth`` channel, and API processes drop their cached lookups when
it arrives (``anygate.api.auth``): a revoked key stops working on every replica at once, and
within a second even on one that missed the message.

Tenants from the config file are created on first start (``seed``), never overwritten: after
that the admin API owns them, so a tenant an operator disabled, or a key one revoked, stays so
across restarts. A config tenant that differs from its stored record is reported in the log.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import WatchError

from anygate.broker.connection import awaited
from anygate.broker.errors import ConflictError, NotFoundError
from anygate.broker.keys import KeySpace
from anygate.broker.tenants import (
    TENANT_SCOPES,
    ApiKeyRecord,
    TenantRecord,
    key_digest,
    new_key_record,
    now_s,
)
from anygate.config import AnygateConfig, TenantSettings

log = structlog.get_logger(__name__)

_MGET_CHUNK = 500


def tenant_not_found(tenant_id: str) -> NotFoundError:
    return NotFoundError(
        f"No tenant found with id '{tenant_id}'.", param="id", code="tenant_not_found"
    )


class TenantStore:
    def __init__(self, redis: Redis, keys: KeySpace) -> None:
        self._redis = redis
        self._k = keys

    @property
    def redis(self) -> Redis:
        return self._redis

    # --- tenants --------------------------------------------------------------------------

    async def get_tenant(self, tenant_id: str) -> TenantRecord | None:
        """The live tenant, or None (never existed, or deleted)."""
        raw = await awaited(self._redis.get(self._k.tenant(tenant_id)))
        if raw is None:
            return None
        record = TenantRecord.model_validate_json(raw)
        return None if record.deleted else record

    async def create_tenant(
        self, tenant_id: str, settings: TenantSettings, *, source: str = "admin"
    ) -> TenantRecord:
        now = now_s()
        record = TenantRecord.model_validate(
            {
                **settings.model_dump(),
                "id": tenant_id,
                "created_at": now,
                "updated_at": now,
                "source": source,
            }
        )
        created = await awaited(
            self._redis.set(self._k.tenant(tenant_id), record.model_dump_json(), nx=True)
        )
        if not created:
            raise ConflictError(
                f"tenant id '{tenant_id}' is taken (by a live or a deleted tenant: ids are "
                "never reused)",
                param="id",
                code="tenant_exists",
            )
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self._k.tenant_ids, {tenant_id: 0})
            pipe.incr(self._k.tenants_version)
            await pipe.execute()
        return record

    async def update_tenant(self, tenant_id: str, changes: dict[str, Any]) -> TenantRecord:
        """Apply validated ``TenantSettings`` fields; quotas are replaced field by field."""
        key = self._k.tenant(tenant_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    current = TenantRecord.model_validate_json(raw) if raw else None
                    if current is None or current.deleted:
                        raise tenant_not_found(tenant_id)
                    merged = current.model_dump()
                    for field, value in changes.items():
                        if field == "quotas" and isinstance(value, dict):
                            merged["quotas"] = {**merged["quotas"], **value}
                        else:
                            merged[field] = value
                    merged["updated_at"] = now_s()
                    record = TenantRecord.model_validate(merged)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, record.model_dump_json())
                    pipe.incr(self._k.tenants_version)
                    pipe.publish(self._k.auth_channel, f"tenant {tenant_id}")
                    await pipe.execute()
                except WatchError:
                    continue
                return record

    async def delete_tenant(self, tenant_id: str) -> None:
        """Leave a tombstone and revoke every key. Jobs already queued still run to their end
        (an accepted job is never dropped); their results expire as usual."""
        await self.update_tenant(tenant_id, {"deleted": True, "disabled": True})
        for record in await self.list_keys(tenant_id):
            if record.revoked_at is None:
                await self.revoke_key(record.id)

    async def list_tenants(
        self, *, after: str | None = None, limit: int = 100
    ) -> tuple[list[TenantRecord], bool]:
        """Live tenants in id order, after the cursor; and whether more follow."""
        found: list[TenantRecord] = []
        start = f"({after}" if after else "-"
        while len(found) <= limit:
            ids = await awaited(
                self._redis.zrangebylex(self._k.tenant_ids, start, "+", start=0, num=limit + 1)
            )
            if not ids:
                break
            for record in await self._tenants(ids):
                if not record.deleted:
                    found.append(record)
            start = f"({ids[-1]}"
        return found[:limit], len(found) > limit

    async def version(self) -> int:
        """Bumped by every change to any tenant: a reader can tell it has the latest cheaply."""
        return int(await awaited(self._redis.get(self._k.tenants_version)) or 0)

    async def all_ids(self) -> list[str]:
        """Every tenant id ever created, deleted ones included."""
        ids: list[str] = await awaited(self._redis.zrange(self._k.tenant_ids, 0, -1))
        return ids

    async def all_tenants(self) -> list[TenantRecord]:
        ids = await awaited(self._redis.zrange(self._k.tenant_ids, 0, -1))
        return [t for t in await self._tenants(ids) if not t.deleted]

    async def _tenants(self, ids: list[str]) -> list[TenantRecord]:
        records = []
        for i in range(0, len(ids), _MGET_CHUNK):
            chunk = [self._k.tenant(t) for t in ids[i : i + _MGET_CHUNK]]
            for raw in await awaited(self._redis.mget(chunk)):
                if raw is not None:
                    records.append(TenantRecord.model_validate_json(raw))
        return records

    # --- keys -----------------------------------------------------------------------------

    async def create_key(
        self,
        tenant: str | None,
        *,
        name: str = "",
        scopes: tuple[str, ...] = TENANT_SCOPES,
        expires_at: float | None = None,
        rpm: int | None = None,
        source: str = "admin",
    ) -> tuple[ApiKeyRecord, str]:
        """A new key for a live tenant (or an operator key when ``tenant`` is None). The key
        is returned here and nowhere else: only its hash is kept."""
        if tenant is not None and await self.get_tenant(tenant) is None:
            raise tenant_not_found(tenant)
        record, key = new_key_record(
            tenant,
            name=name,
            scopes=scopes,
            expires_at=expires_at,
            rpm=rpm,
            source=source,  # type: ignore[arg-type]
        )
        await self._put_key(record)
        return record, key

    async def _put_key(self, record: ApiKeyRecord) -> bool:
        """Store a key unless its hash is known already (a revoked key stays revoked)."""
        if not await awaited(self._redis.hsetnx(self._k.api_key_index, record.digest, record.id)):
            return False
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(self._k.api_key(record.id), record.model_dump_json())
            pipe.zadd(self._owner_keys(record.tenant), {record.id: record.created_at})
            await pipe.execute()
        return True

    def _owner_keys(self, tenant: str | None) -> str:
        return self._k.tenant_keys(tenant) if tenant is not None else f"{self._k.prefix}opkeys"

    async def get_key(self, key_id: str) -> ApiKeyRecord | None:
        raw = await awaited(self._redis.get(self._k.api_key(key_id)))
        return ApiKeyRecord.model_validate_json(raw) if raw else None

    async def find_key(self, digest: str) -> ApiKeyRecord | None:
        key_id = await awaited(self._redis.hget(self._k.api_key_index, digest))
        return await self.get_key(key_id) if key_id else None

    async def list_keys(self, tenant: str | None) -> list[ApiKeyRecord]:
        ids = await awaited(self._redis.zrange(self._owner_keys(tenant), 0, -1))
        if not ids:
            return []
        raws = await awaited(self._redis.mget([self._k.api_key(i) for i in ids]))
        return [ApiKeyRecord.model_validate_json(r) for r in raws if r is not None]

    async def revoke_key(self, key_id: str) -> ApiKeyRecord:
        record = await self.get_key(key_id)
        if record is None:
            raise NotFoundError(
                f"No API key found with id '{key_id}'.", param="key_id", code="api_key_not_found"
            )
        if record.revoked_at is None:
            record = record.model_copy(update={"revoked_at": now_s()})
            await awaited(self._redis.set(self._k.api_key(key_id), record.model_dump_json()))
        await self.announce(f"key {key_id}")
        return record

    async def announce(self, what: str) -> None:
        await awaited(self._redis.publish(self._k.auth_channel, what))

    # --- config ---------------------------------------------------------------------------

    async def seed(self, config: AnygateConfig, *, keys: bool = True) -> None:
        """Create the config file's tenants and keys that Redis does not know yet. Workers
        seed tenants only: they may not hold the environment the key references name."""
        for tenant in config.tenants:
            stored = await awaited(self._redis.get(self._k.tenant(tenant.id)))
            if stored is None:
                with contextlib.suppress(ConflictError):  # another process seeded it just now
                    await self.create_tenant(tenant.id, tenant.settings(), source="config")
            else:
                record = TenantRecord.model_validate_json(stored)
                if record.deleted or _settings_of(record) != tenant.settings():
                    log.warning(
                        "tenant in the config file differs from the stored one; the stored "
                        "one is used (change it with the admin API)",
                        tenant=tenant.id,
                        deleted=record.deleted,
                    )
            if not keys:
                continue
            for digest in _config_digests(tenant.api_keys, tenant.api_key_sha256):
                await self._put_key(
                    ApiKeyRecord(
                        id=f"key_cfg_{digest[:16]}",
                        tenant=tenant.id,
                        name="from config",
                        scopes=TENANT_SCOPES,
                        digest=digest,
                        hint="(from config)",
                        created_at=now_s(),
                        source="config",
                    )
                )


def _settings_of(record: TenantRecord) -> TenantSettings:
    return TenantSettings.model_validate(
        record.model_dump(include=set(TenantSettings.model_fields))
    )


def _config_digests(refs: Iterable[Any], digests: Iterable[str]) -> list[str]:
    return [*(key_digest(ref.resolve().get_secret_value()) for ref in refs), *digests]
