"""Tenant authentication: API keys are compared by SHA-256, never stored or logged in clear."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from starlette.requests import Request

from anygate.broker.errors import AuthenticationError, PermissionDeniedError
from anygate.config import AnygateConfig


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    weight: int


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class TenantDirectory:
    """Key hash → tenant, built once from config (tenants in Redis arrive with the admin API)."""

    def __init__(self, config: AnygateConfig) -> None:
        self._by_hash: dict[str, Tenant] = {}
        self._disabled: set[str] = set()
        for t in config.tenants:
            tenant = Tenant(t.id, t.weight)
            if t.disabled:
                self._disabled.add(t.id)
            for ref in t.api_keys:
                self._by_hash[hash_key(ref.resolve().get_secret_value())] = tenant
            for digest in t.api_key_sha256:
                self._by_hash[digest] = tenant

    def authenticate(self, request: Request) -> Tenant:
        key = bearer_key(request)
        if key is None:
            raise AuthenticationError(
                "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' "
                "(or 'x-goog-api-key: <key>').",
                code="missing_api_key",
            )
        tenant = self._by_hash.get(hash_key(key))
        if tenant is None:
            raise AuthenticationError("Incorrect API key provided.")
        if tenant.id in self._disabled:
            raise PermissionDeniedError("this tenant is disabled", code="tenant_disabled")
        return tenant


def bearer_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return (
        request.headers.get("x-api-key")
        or request.headers.get("x-goog-api-key")  # the google-genai SDK's header
        or request.query_params.get("key")  # Google's query-string form
        or None
    )
