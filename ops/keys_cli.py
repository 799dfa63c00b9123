"""``anygate keys …`` and ``anygate tenants …``: API keys and tenants for the operator.

Against a running gateway they go through its admin API (a URL and an admin key, as every
user-facing command finds them: docs/cli.md#connection); on a fresh install, before any admin
key exists, ``--redis-url`` or ``$ANYGATE_CONFIG`` makes them write to Redis directly, with
every change announced to running API processes as the admin API's are (``keys_backends``).
A new key is printed once, alone on stdout (so ``KEY=$(anygate keys create …)`` captures just
the key); everything else goes to stderr.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from typing import Any

import click

from anygate.broker.tenants import TENANT_SCOPES
from anygate.config import TENANT_ID_PATTERN
from anygate.ops.cli_context import Sources, connection_options
from anygate.ops.keys_backends import Backend, backend_for


def backend_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The connection options plus ``--redis-url``; the callback gets a ``backend`` instead,
    chosen only once the command's own arguments were checked (a usage error reads nothing)."""

    @functools.wraps(command)
    def with_backend(*args: Any, sources: Sources, redis_url: str | None, **kwargs: Any) -> Any:
        return command(*args, backend=lambda: backend_for(redis_url, sources), **kwargs)

    with_redis = click.option(
        "--redis-url",
        default=None,
        metavar="URL",
        help="Write to this Redis directly instead of using the admin API (with "
        "$ANYGATE_CONFIG's namespace, if set).",
    )(with_backend)
    return connection_options(admin_key=True)(with_redis)


def summary(record: dict[str, Any]) -> str:
    """One line for a key (the admin API's object): never the key itself."""
    expires_at = record.get("expires_at")
    expires = (
        time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(expires_at))
        if expires_at is not None
        else "never"
    )
    state = "revoked" if record.get("revoked_at") is not None else "active"
    return (
        f"{record['id']}  tenant={record.get('tenant') or '(operator)'}  "
        f"scopes={','.join(record['scopes'])}  rpm={record.get('rpm') or '-'}  "
        f"expires={expires}  {state}  {record.get('name') or ''}"
    ).rstrip()


LazyBackend = Callable[[], Backend]


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
@backend_options
def create_key(  # click passes options by name
    *,
    backend: LazyBackend,
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
    record, key = backend().create_key(
        tenant, name=name, scopes=scopes or None, expires_at=expires_at, rpm=rpm
    )
    click.echo(key)
    click.echo(f"created {summary(record)}", err=True)


@keys.command("list")
@click.option("--tenant", help="Whose keys (default: the operator keys).")
@backend_options
def list_keys(backend: LazyBackend, tenant: str | None) -> None:
    """List keys (never the keys themselves: their id, scopes and state)."""
    records = backend().list_keys(tenant)
    for record in records:
        click.echo(summary(record))
    if not records:
        whose = (
            f"tenant {tenant}"
            if tenant
            else "the operator (keys in the config file are not listed)"
        )
        click.echo(f"no keys for {whose}", err=True)


@keys.command("revoke")
@click.argument("key_id")
@backend_options
def revoke_key(backend: LazyBackend, key_id: str) -> None:
    """Revoke a key: it stops working on every API process at once."""
    click.echo(f"revoked {summary(backend().revoke_key(key_id))}", err=True)


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
@backend_options
def create_tenant(backend: LazyBackend, tenant_id: str, weight: int) -> None:
    """Create a tenant; ids are never reused, not even a deleted tenant's."""
    if not re.match(TENANT_ID_PATTERN, tenant_id):
        raise click.BadParameter("letters, digits, '_' and '-', at most 64", param_hint="ID")
    record = backend().create_tenant(tenant_id, weight)
    click.echo(f"created tenant {record['id']} (weight {record['weight']})", err=True)


@tenants.command("list")
@backend_options
def list_tenants(backend: LazyBackend) -> None:
    """Live tenants, one a line: id, weight, state."""
    for record in backend().list_tenants():
        state = "disabled" if record["disabled"] else "active"
        click.echo(
            f"{record['id']}  weight={record['weight']}  {state}  auth_mode={record['auth_mode']}"
        )
