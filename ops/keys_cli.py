"""``anygate keys …`` and ``anygate tenants …``: the operator's way in before any admin key exists.

They talk to Redis directly through ``TenantStore`` with the loaded configuration, so they work
on a fresh install, with no API process running, and every change is announced to running API
processes exactly as the admin API's are. A new key is printed once, alone on stdout (so
``KEY=$(anygate keys create …)`` captures just the key); everything else goes to stderr.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from anygate.broker import KeySpace, create_redis
from anygate.broker.errors import AnygateError
from anygate.broker.tenant_store import TenantStore
from anygate.broker.tenants import ADMIN, TENANT_SCOPES, ApiKeyRecord
from anygate.config import (
    TENANT_ID_PATTERN,
    AnygateConfig,
    ConfigError,
    TenantSettings,
    load_config,
)

T = TypeVar("T")


def _with_store(action: Callable[[TenantStore], Awaitable[T]]) -> T:
    """Run ``action`` against the configured Redis; typed errors become one-line messages."""
    try:
        config: AnygateConfig = load_config()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None

    async def run() -> T:
        redis = create_redis(config.redis)
        try:
            return await action(TenantStore(redis, KeySpace.of(config)))
        finally:
            await redis.aclose()

    try:
        return asyncio.run(run())
    except AnygateError as exc:
        raise click.ClickException(exc.message) from None


def _summary(record: ApiKeyRecord) -> str:
    expires = (
        time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(record.expires_at))
        if record.expires_at is not None
        else "never"
    )
    state = "revoked" if record.revoked_at is not None else "active"
    return (
        f"{record.id}  tenant={record.tenant or '(operator)'}  scopes={','.join(record.scopes)}  "
        f"rpm={record.rpm or '-'}  expires={expires}  {state}  {record.name}"
    ).rstrip()


@click.group()
def keys() -> None:
    """Create, list and revoke API keys (stored hashed; a key is shown once)."""


@keys.command("create")
@click.option("--tenant", help="The tenant the key acts for.")
@click.option("--admin", "operator", is_flag=True, help="An operator key for the admin API.")
@click.option("--name", default="", help="A label for people (shown in listings).")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(TENANT_SCOPES),
    help="Repeatable; default: all tenant scopes.",
)
@click.option("--rpm", type=click.IntRange(min=1), help="Requests per minute this key may make.")
@click.option("--expires-in-days", type=click.FloatRange(min=0, min_open=True))
def create_key(  # click passes options by name
    *,
    tenant: str | None,
    operator: bool,
    name: str,
    scopes: tuple[str, ...],
    rpm: int | None,
    expires_in_days: float | None,
) -> None:
    """Create a key: the key on stdout (once, never again), its record on stderr."""
    if operator == (tenant is not None):
        raise click.UsageError("give exactly one of --tenant T or --admin")
    if operator and scopes:
        raise click.UsageError("an operator key has the admin scope only; drop --scope")
    expires_at = time.time() + expires_in_days * 86_400 if expires_in_days else None
    record, key = _with_store(
        lambda store: store.create_key(
            tenant,
            name=name,
            scopes=(ADMIN,) if operator else (scopes or TENANT_SCOPES),
            expires_at=expires_at,
            rpm=rpm,
            source="cli",
        )
    )
    click.echo(key)
    click.echo(f"created {_summary(record)}", err=True)


@keys.command("list")
@click.option("--tenant", help="Whose keys (default: the operator keys).")
def list_keys(tenant: str | None) -> None:
    """List keys (never the keys themselves: their id, scopes and state)."""
    for record in _with_store(lambda store: store.list_keys(tenant)):
        click.echo(_summary(record))


@keys.command("revoke")
@click.argument("key_id")
def revoke_key(key_id: str) -> None:
    """Revoke a key: it stops working on every API process at once."""
    record = _with_store(lambda store: store.revoke_key(key_id))
    click.echo(f"revoked {_summary(record)}", err=True)


@keys.command("new-encryption-key")
def new_encryption_key_command() -> None:
    """Print a fresh server key for security.encryption_key (32 random bytes, base64); keep
    it in a file or secret store and reference it as file:/path or env:NAME."""
    from anygate.broker.client_keys import new_encryption_key  # noqa: PLC0415 - only this command needs cryptography

    click.echo(new_encryption_key())


@click.group()
def tenants() -> None:
    """Create and list tenants (the admin API changes quotas and weights)."""


@tenants.command("create")
@click.argument("tenant_id")
@click.option("--weight", type=click.IntRange(1, 100), default=1, show_default=True)
def create_tenant(tenant_id: str, weight: int) -> None:
    """Create a tenant; ids are never reused, not even a deleted tenant's."""
    if not re.match(TENANT_ID_PATTERN, tenant_id):
        raise click.BadParameter("letters, digits, '_' and '-', at most 64", param_hint="ID")
    record = _with_store(
        lambda store: store.create_tenant(tenant_id, TenantSettings(weight=weight))
    )
    click.echo(f"created tenant {record.id} (weight {record.weight})", err=True)


@tenants.command("list")
def list_tenants() -> None:
    """Live tenants, one a line: id, weight, state."""
    for record in _with_store(lambda store: store.all_tenants()):
        state = "disabled" if record.disabled else "active"
        click.echo(f"{record.id}  weight={record.weight}  {state}  auth_mode={record.auth_mode}")
