"""Who is calling, and may they: API keys to tenants and scopes, with revocation that holds.

A key is looked up by its SHA-256 in Redis (``TenantStore``) and the answer cached in this
process for at most ``CACHE_TTL_S``. Every change to a key or tenant is announced on the
``auth`` channel and empties the cache at once; the TTL bounds how stale a replica can be if
it missed that message (a reconnect). So a revoked key fails on the next request everywhere,
and after one second at the latest.

Operator keys from the config file (``admin_api_keys``) are compared in constant time against
their hashes; keys in Redis are found by hash (nothing of the secret takes part in a branch)
and the stored hash is compared in constant time once more.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import secrets
import time
from dataclasses import dataclass

from starlette.requests import Request

from anygate.api.redis_watch import RedisWatch
from anygate.broker import Broker
from anygate.broker.errors import AuthenticationError, PermissionDeniedError, RateLimitedError
from anygate.broker.tenant_store import TenantStore
from anygate.broker.tenants import ADMIN, ApiKeyRecord, TenantRecord, key_digest, same_digest
from anygate.config import AnygateConfig, AuthMode, TenantQuotas

CACHE_TTL_S = 1.0
CACHE_MAX_ENTRIES = 10_000
TENANT_KEY_HEADER = "x-anygate-api-key"
"""Where the tenant's key goes when the native header carries a provider key (passthrough)."""


def hash_key(key: str) -> str:
    return key_digest(key)


@dataclass(frozen=True, slots=True)
class Tenant:
    """The caller, as a request handler sees it."""

    id: str
    weight: int
    quotas: TenantQuotas
    auth_mode: AuthMode
    key_id: str
    key_rpm: int | None = None
    provider_batches: bool = False
    """Patient jobs may go to a provider's Batch API (``TenantSettings.provider_batches``)."""


@dataclass(frozen=True, slots=True)
class _Found:
    key: ApiKeyRecord
    tenant: TenantRecord | None
    at: float


class Authenticator:
    """``watch``: while Redis is known to be away, every caller is told at once (503), before
    any lookup could hang; every handler authenticates first, so this is the one place."""

    def __init__(
        self,
        config: AnygateConfig,
        store: TenantStore,
        broker: Broker,
        watch: RedisWatch | None = None,
    ) -> None:
        self._store = store
        self._broker = broker
        self._watch = watch
        self._minute_ms = int(config.queue.rate_limit_minute_s * 1000)
        self._admin_digests = tuple(
            [hash_key(ref.resolve().get_secret_value()) for ref in config.admin_api_keys]
            + list(config.admin_api_key_sha256)
        )
        self._cache: dict[str, _Found] = {}
        self._fetching: dict[str, asyncio.Task[_Found | None]] = {}
        """One lookup in flight per key: when a key's entry lapses under load, every request
        then arriving waits on the same two reads instead of making its own."""
        self._epoch = 0

    def forget(self, _message: str = "") -> None:
        """An ``auth`` announcement: some key or tenant changed; look everything up again.
        A lookup already in flight may have read the old state: later requests do not join
        it, and what it found is not cached."""
        self._cache.clear()
        self._fetching.clear()
        self._epoch += 1

    async def tenant(self, request: Request, scope: str) -> Tenant:
        """The tenant a request acts for: 401 without a valid key, 403 when the key lacks
        ``scope`` or the tenant is disabled."""
        if self._watch is not None:
            await self._watch.ready()
        found = await self._lookup(_presented_key(request))
        if found is None or found.tenant is None:
            if found is not None:  # an operator key: admin only, no tenant's data
                raise PermissionDeniedError(
                    "this key is an operator key; it has no tenant to act for",
                    code="insufficient_scope",
                )
            raise AuthenticationError("Incorrect API key provided.")
        if scope not in found.key.scopes:
            raise PermissionDeniedError(
                f"this API key lacks the '{scope}' scope (it has: "
                f"{', '.join(found.key.scopes) or 'none'})",
                code="insufficient_scope",
            )
        t = found.tenant
        if t.disabled:
            raise PermissionDeniedError("this tenant is disabled", code="tenant_disabled")
        if found.key.rpm is not None:
            await self._count_request(found.key)
        note_caller(request, t.id, found.key.id)
        return Tenant(
            t.id, t.weight, t.quotas, t.auth_mode, found.key.id, found.key.rpm, t.provider_batches
        )

    async def _count_request(self, key: ApiKeyRecord) -> None:
        """The key's own ``rpm``: every request counts, over a sliding minute shared by all
        replicas; beyond it, a 429 saying when there is room again."""
        assert key.rpm is not None
        admission = await self._broker.take_rate(
            f"rpm:k:{key.id}", self._minute_ms, key.rpm, secrets.token_hex(8), 1
        )
        if not admission.admitted:
            raise KeyRateLimitedError(
                f"this API key is limited to {key.rpm} requests per minute",
                retry_after=max(1, math.ceil(admission.retry_after_ms / 1000)),
            )

    async def admin(self, request: Request) -> str:
        """Allow an operator: a config admin key or a key with the ``admin`` scope. Returns
        who, for the audit log (a key id, never the key)."""
        actor = await self.operator(hash_key(_presented_key(request)))
        note_caller(request, None, actor)
        return actor

    async def operator(self, digest: str) -> str:
        """Who holds the key with this digest, if it may act as an operator: the admin API's
        check, and the console's at login and on every request of a session (which keeps the
        digest, never the key), so a revoked key ends its sessions too."""
        if self._watch is not None:
            await self._watch.ready()
        matched = False
        for candidate in self._admin_digests:  # every candidate: constant time overall
            matched |= hmac.compare_digest(digest, candidate)
        if matched:
            return "config-admin-key"
        found = await self._lookup_digest(digest)
        if found is None:
            raise AuthenticationError("Incorrect API key provided.")
        if ADMIN not in found.key.scopes:
            raise PermissionDeniedError(
                "the admin API needs an admin key", code="insufficient_scope"
            )
        return found.key.id

    async def _lookup(self, key: str) -> _Found | None:
        return await self._lookup_digest(hash_key(key))

    async def _lookup_digest(self, digest: str) -> _Found | None:
        hit = self._cache.get(digest)
        if hit is None or time.monotonic() - hit.at >= CACHE_TTL_S:
            fetching = self._fetching.get(digest)
            if fetching is None:
                fetching = asyncio.create_task(self._fetch(digest, self._epoch))
                self._fetching[digest] = fetching
                fetching.add_done_callback(lambda task: self._fetched(digest, task))
            hit = await asyncio.shield(fetching)  # a caller leaving does not cancel the others
        return hit if hit is not None and hit.key.usable(time.time()) else None

    async def _fetch(self, digest: str, epoch: int) -> _Found | None:
        record = await self._store.find_key(digest)
        if record is None or not same_digest(record.digest, digest):
            self._cache.pop(digest, None)
            return None
        tenant = await self._store.get_tenant(record.tenant) if record.tenant else None
        if record.tenant is not None and tenant is None:
            return None  # the tenant was deleted
        found = _Found(record, tenant, time.monotonic())
        if epoch == self._epoch:
            if len(self._cache) >= CACHE_MAX_ENTRIES:
                self._cache.pop(next(iter(self._cache)))
            self._cache[digest] = found
        return found

    def _fetched(self, digest: str, task: asyncio.Task[_Found | None]) -> None:
        if self._fetching.get(digest) is task:
            del self._fetching[digest]
        if not task.cancelled():
            task.exception()  # its callers have it; nobody left waiting is no error of ours


def note_caller(request: Request, tenant_id: str | None, key_id: str) -> None:
    """Who made the request, for its access-log line (``api/access_log.py``): ``request.state``
    lives in the ASGI scope, which the middleware reads once the response is sent."""
    request.state.tenant_id = tenant_id
    request.state.key_id = key_id


def _presented_key(request: Request) -> str:
    key = presented_key(request)
    if key is None:
        raise AuthenticationError(
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' "
            "(or 'x-goog-api-key: <key>').",
            code="missing_api_key",
        )
    return key


def presented_key(request: Request) -> str | None:
    """The gateway key: ``x-anygate-api-key`` when present (then the native header may carry
    a provider key, passthrough mode), else the native header of either surface."""
    explicit = request.headers.get(TENANT_KEY_HEADER)
    if explicit:
        return explicit.strip()
    return native_key(request)


def native_key(request: Request) -> str | None:
    found = native_credential(request)
    return found[0] if found else None


def native_credential(request: Request) -> tuple[str, str] | None:
    """The key in the surfaces' own places, and which place: ``Authorization: Bearer``
    (OpenAI), ``x-api-key``, ``x-goog-api-key`` (the google-genai SDK) or ``?key=`` (Google's
    query-string form). The one list of them, for gateway and provider keys alike."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), "Authorization"
    for where, found in (
        ("x-api-key", request.headers.get("x-api-key")),
        ("x-goog-api-key", request.headers.get("x-goog-api-key")),
        ("key", request.query_params.get("key")),
    ):
        if found and found.strip():
            return found.strip(), where
    return None


class KeyRateLimitedError(RateLimitedError):
    default_code = "rate_limit_exceeded"
