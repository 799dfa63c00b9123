"""Tenants and API keys as Redis stores them (docs/api.md#admin-api, docs/operations.md#security):
records, key minting, scopes.

A key is ``ag-`` followed by 43 URL-safe characters (256 random bits): the prefix lets secret
scanners and people recognise it. Only its SHA-256 is stored. Plain SHA-256 rather than a slow
password hash is deliberate: the key is random, not chosen by a person, so there is nothing to
guess, and authentication must stay cheap on every request. What a listing shows is a hint of
the first and last characters, as OpenAI's ``redacted_value`` does.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from anygate.config import TENANT_ID_PATTERN, TenantSettings

KEY_PREFIX = "ag-"
ADMIN = "admin"
TENANT_SCOPES: tuple[str, ...] = ("inference", "jobs", "batches")
"""``inference``: the OpenAI- and Gemini-compatible calls; ``jobs``: the native job API;
``batches``: files and batches. ``admin`` is the admin API, for operators."""
ALL_SCOPES: tuple[str, ...] = (*TENANT_SCOPES, ADMIN)

Scope = Literal["inference", "jobs", "batches", "admin"]


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def same_digest(a: str, b: str) -> bool:
    """Constant time: how long a comparison takes says nothing about how much matched."""
    return hmac.compare_digest(a.encode(), b.encode())


def mint_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hint(key: str) -> str:
    return f"{key[:7]}…{key[-4:]}"


def now_s() -> float:
    return round(time.time(), 3)


_READ_BACK = ConfigDict(extra="ignore", frozen=True)
"""Records read back may carry fields a newer version wrote: ignore them, never fail."""


class TenantRecord(TenantSettings):
    model_config = _READ_BACK

    id: Annotated[str, Field(pattern=TENANT_ID_PATTERN)]
    created_at: float
    updated_at: float
    source: Literal["config", "admin"] = "admin"
    deleted: bool = False
    """A tombstone: the id is never handed out again, so a new tenant cannot see the jobs or
    files a deleted one left behind."""

    def to_api(self) -> dict[str, object]:
        return {
            "object": "tenant",
            "id": self.id,
            "weight": self.weight,
            "disabled": self.disabled,
            "auth_mode": self.auth_mode,
            "quotas": self.quotas.model_dump(exclude_none=True),
            "budget_webhook_url": self.budget_webhook_url,
            "provider_batches": self.provider_batches,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "source": self.source,
        }


class ApiKeyRecord(BaseModel):
    model_config = _READ_BACK

    id: str
    tenant: str | None
    """None for an operator key (admin scope only, no tenant's data)."""
    name: str = ""
    scopes: tuple[str, ...]
    digest: str
    hint: str
    created_at: float
    expires_at: float | None = None
    rpm: int | None = None
    """Requests per minute this key may submit; beyond it, a 429 with Retry-After."""
    revoked_at: float | None = None
    source: Literal["config", "admin", "cli"] = "admin"

    def usable(self, now: float) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or now < self.expires_at

    def to_api(self) -> dict[str, object]:
        return {
            "object": "api_key",
            "id": self.id,
            "tenant": self.tenant,
            "name": self.name,
            "scopes": list(self.scopes),
            "redacted_value": self.hint,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "rpm": self.rpm,
            "revoked_at": self.revoked_at,
            "source": self.source,
        }


def new_key_record(
    tenant: str | None,
    *,
    name: str = "",
    scopes: tuple[str, ...] = TENANT_SCOPES,
    expires_at: float | None = None,
    rpm: int | None = None,
    source: Literal["config", "admin", "cli"] = "admin",
) -> tuple[ApiKeyRecord, str]:
    """A fresh key and its record; the key itself exists only in the return value."""
    key = mint_key()
    record = ApiKeyRecord(
        id=f"key_{secrets.token_hex(8)}",
        tenant=tenant,
        name=name,
        scopes=tuple(dict.fromkeys(scopes)),
        digest=key_digest(key),
        hint=key_hint(key),
        created_at=now_s(),
        expires_at=expires_at,
        rpm=rpm,
        source=source,
    )
    return record, key
