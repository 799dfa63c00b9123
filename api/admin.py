"""The admin API's tenants and API keys (docs/api.md#admin-api): operators only, every change
logged.

Each handler authenticates first (``Authenticator.admin``: 401 without a valid key, 403 for a
key without the ``admin`` scope), so nothing about the admin surface, not even a validation
message, is visible to anyone else. The records live in ``TenantStore``, which announces every
change on the ``auth`` channel; this process also drops its own cached lookups at once, so the
next request it serves already sees a revoked key or a new quota.

A key's secret appears in exactly one place: the answer to the request that created it.

The changes themselves (``add_tenant``, ``change_tenant``, ``remove_tenant``, ``add_key``,
``cancel_key``) are plain functions of the gateway and the actor, which the console's forms call
too (docs/console.md): one validation, one audit line, whichever door the operator used.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import structlog
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from anygate.api.gateway import Gateway, gateway_of
from anygate.api.paging import list_page, page_limit
from anygate.api.request_body import read_body
from anygate.api.responses import JSONResponse
from anygate.broker.errors import InvalidRequestError, NotFoundError
from anygate.broker.tenant_store import tenant_not_found
from anygate.broker.tenants import ADMIN, TENANT_SCOPES, ApiKeyRecord, Scope, TenantRecord
from anygate.config import TENANT_ID_PATTERN, AnygateConfig, TenantSettings
from anygate.core.body import parse_json_object, validate

log = structlog.get_logger(__name__)


# --- shared by the admin modules ------------------------------------------------------------


def audit(actor: str, action: str, target: str, **details: Any) -> None:
    """One line per change: who (a key id, never a key), what, to what."""
    log.info("admin action", actor=actor, action=action, target=target, **details)


async def json_body(request: Request, gw: Gateway) -> dict[str, Any]:
    server = gw.config.server
    return parse_json_object(await read_body(request, server.max_body_bytes), server.max_json_depth)


# --- tenants --------------------------------------------------------------------------------


class NewTenant(TenantSettings):
    """``POST /admin/tenants``: an id and any of the settings a config tenant has."""

    id: Annotated[str, Field(pattern=TENANT_ID_PATTERN)]


def _check_settings(config: AnygateConfig, changes: dict[str, Any]) -> None:
    """What the config file's validation checks for its tenants, for one set by the API."""
    mode = changes.get("auth_mode")
    if mode not in {None, "gateway"} and config.security.encryption_key is None:
        raise InvalidRequestError(
            f"auth_mode: {mode!r} takes client provider keys, which need "
            "security.encryption_key to be configured (they are encrypted at rest)",
            param="auth_mode",
        )
    quotas = changes.get("quotas") or {}
    window_s, minute_s = config.queue.rate_limit_window_s, config.queue.rate_limit_minute_s
    for field in ("rpm", "tpm"):
        per_minute = quotas.get(field)
        if per_minute is not None and per_minute * window_s < minute_s:
            raise InvalidRequestError(
                f"quotas.{field}: {per_minute} per minute is less than one per "
                f"queue.rate_limit_window_s ({window_s:g} s)",
                param=f"quotas.{field}",
            )


# --- the changes, shared by the admin API and the console (docs/console.md) ----------------
# One function per change: the same validation, the same store call, the same cache drop and
# the same audit line whoever asks; the console adds ``via="console"`` to the line.


def _via(via: str | None) -> dict[str, str]:
    return {"via": via} if via else {}


async def add_tenant(
    gw: Gateway, actor: str, body: dict[str, Any], *, via: str | None = None
) -> TenantRecord:
    """A new tenant from a ``NewTenant`` body (an id and any settings)."""
    spec = validate(NewTenant, body)
    settings = TenantSettings.model_validate(spec.model_dump(exclude={"id"}))
    _check_settings(gw.config, settings.model_dump())
    record = await gw.tenants.create_tenant(spec.id, settings)
    audit(actor, "tenant.create", spec.id, **_via(via))
    return record


async def change_tenant(
    gw: Gateway, actor: str, tenant_id: str, body: dict[str, Any], *, via: str | None = None
) -> TenantRecord:
    """A partial update: only the fields sent change; in ``quotas`` too, field by field (a
    quota sent as ``null`` is lifted)."""
    changes = validate(TenantSettings, body).model_dump(exclude_unset=True)
    _check_settings(gw.config, changes)
    record = await gw.tenants.update_tenant(tenant_id, changes)
    gw.auth.forget()
    audit(actor, "tenant.update", tenant_id, fields=sorted(changes), **_via(via))
    return record


async def remove_tenant(gw: Gateway, actor: str, tenant_id: str, *, via: str | None = None) -> None:
    """A tombstone: the id is never reused, every key is revoked, queued jobs still finish."""
    await gw.tenants.delete_tenant(tenant_id)
    gw.auth.forget()
    audit(actor, "tenant.delete", tenant_id, **_via(via))


async def create_tenant(request: Request) -> Response:
    gw = gateway_of(request)
    actor = await gw.auth.admin(request)
    record = await add_tenant(gw, actor, await json_body(request, gw))
    return JSONResponse(record.to_api(), status_code=201)


async def list_tenants(request: Request) -> Response:
    gw = gateway_of(request)
    await gw.auth.admin(request)
    records, has_more = await gw.tenants.list_tenants(
        after=request.query_params.get("after") or None, limit=page_limit(request)
    )
    return list_page([r.to_api() for r in records], has_more)


async def get_tenant(request: Request) -> Response:
    gw = gateway_of(request)
    await gw.auth.admin(request)
    tenant_id = request.path_params["tenant_id"]
    record = await gw.tenants.get_tenant(tenant_id)
    if record is None:
        raise tenant_not_found(tenant_id)
    return JSONResponse(record.to_api())


async def update_tenant(request: Request) -> Response:
    gw = gateway_of(request)
    actor = await gw.auth.admin(request)
    tenant_id = request.path_params["tenant_id"]
    record = await change_tenant(gw, actor, tenant_id, await json_body(request, gw))
    return JSONResponse(record.to_api())


async def delete_tenant(request: Request) -> Response:
    gw = gateway_of(request)
    actor = await gw.auth.admin(request)
    tenant_id = request.path_params["tenant_id"]
    await remove_tenant(gw, actor, tenant_id)
    return JSONResponse({"id": tenant_id, "object": "tenant.deleted", "deleted": True})


# --- keys -----------------------------------------------------------------------------------


class NewKey(BaseModel):
    """``POST /admin/keys``. ``tenant`` null or absent: an operator key (admin scope only)."""

    model_config = ConfigDict(extra="forbid")

    tenant: Annotated[str, Field(pattern=TENANT_ID_PATTERN)] | None = None
    name: Annotated[str, Field(max_length=200)] = ""
    scopes: Annotated[tuple[Scope, ...], Field(min_length=1)] | None = None
    expires_at: float | None = None
    """Unix seconds; the key stops working then."""
    rpm: Annotated[int, Field(ge=1)] | None = None


def key_scopes(tenant: str | None, scopes: tuple[str, ...] | None) -> tuple[str, ...]:
    """An operator key acts for no tenant, so ``admin`` is all it may do; a tenant's key may do
    anything a tenant may, but never ``admin``: that would let one tenant read and change every
    other's settings."""
    if tenant is None:
        if scopes is not None and tuple(dict.fromkeys(scopes)) != (ADMIN,):
            raise InvalidRequestError(
                f"scopes: an operator key (no tenant) has exactly the scopes ['{ADMIN}']",
                param="scopes",
            )
        return (ADMIN,)
    if scopes is None:
        return TENANT_SCOPES
    if ADMIN in scopes:
        raise InvalidRequestError(
            f"scopes: '{ADMIN}' is for operator keys (tenant: null), not a tenant's key",
            param="scopes",
        )
    return tuple(dict.fromkeys(scopes))


async def add_key(
    gw: Gateway, actor: str, body: dict[str, Any], *, via: str | None = None
) -> tuple[ApiKeyRecord, str]:
    """A new key from a ``NewKey`` body: its record, and the secret, which exists only in this
    return value (the caller shows it once)."""
    spec = validate(NewKey, body)
    scopes = key_scopes(spec.tenant, spec.scopes)
    if spec.expires_at is not None and spec.expires_at <= time.time():
        raise InvalidRequestError("expires_at: must be in the future", param="expires_at")
    record, key = await gw.tenants.create_key(
        spec.tenant, name=spec.name, scopes=scopes, expires_at=spec.expires_at, rpm=spec.rpm
    )
    audit(actor, "key.create", record.id, tenant=spec.tenant, scopes=list(scopes), **_via(via))
    return record, key


async def cancel_key(
    gw: Gateway, actor: str, key_id: str, *, via: str | None = None
) -> ApiKeyRecord:
    """Idempotent: revoking a revoked key answers its record again."""
    record = await gw.tenants.revoke_key(key_id)
    gw.auth.forget()
    audit(actor, "key.revoke", key_id, **_via(via))
    return record


async def create_key(request: Request) -> Response:
    gw = gateway_of(request)
    actor = await gw.auth.admin(request)
    record, key = await add_key(gw, actor, await json_body(request, gw))
    return JSONResponse({**record.to_api(), "key": key}, status_code=201)


async def list_keys(request: Request) -> Response:
    """A tenant's keys (``?tenant=``), or the operator keys; revoked ones included, marked."""
    gw = gateway_of(request)
    await gw.auth.admin(request)
    tenant = request.query_params.get("tenant") or None
    records = await gw.tenants.list_keys(tenant)
    if tenant is not None and not records and await gw.tenants.get_tenant(tenant) is None:
        raise tenant_not_found(tenant)
    return list_page([r.to_api() for r in records])


def _key_not_found(key_id: str) -> NotFoundError:
    return NotFoundError(
        f"No API key found with id '{key_id}'.", param="key_id", code="api_key_not_found"
    )


async def get_key(request: Request) -> Response:
    gw = gateway_of(request)
    await gw.auth.admin(request)
    key_id = request.path_params["key_id"]
    record = await gw.tenants.get_key(key_id)
    if record is None:
        raise _key_not_found(key_id)
    return JSONResponse(record.to_api())


async def revoke_key(request: Request) -> Response:
    gw = gateway_of(request)
    actor = await gw.auth.admin(request)
    record = await cancel_key(gw, actor, request.path_params["key_id"])
    return JSONResponse(record.to_api())


ROUTES = [
    Route("/admin/tenants", create_tenant, methods=["POST"]),
    Route("/admin/tenants", list_tenants, methods=["GET"]),
    Route("/admin/tenants/{tenant_id}", get_tenant, methods=["GET"]),
    # POST too, for clients that cannot send PATCH
    Route("/admin/tenants/{tenant_id}", update_tenant, methods=["PATCH", "POST"]),
    Route("/admin/tenants/{tenant_id}", delete_tenant, methods=["DELETE"]),
    Route("/admin/keys", create_key, methods=["POST"]),
    Route("/admin/keys", list_keys, methods=["GET"]),
    Route("/admin/keys/{key_id}", get_key, methods=["GET"]),
    Route("/admin/keys/{key_id}", revoke_key, methods=["DELETE"]),
    Route("/admin/keys/{key_id}/revoke", revoke_key, methods=["POST"]),
]
