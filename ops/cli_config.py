"""``anygate config check FILE``: the file through the real loader, before a process needs it.

It loads exactly as ``anygate api``/``worker``/``control`` will (YAML, then the ``ANYGATE__*``
overrides of this environment, then the model's checks), so an OK here is an OK there; an
error is the loader's, naming the path of each bad field. Secret references (``env:NAME``,
``file:/path``) are checked for shape only: whether they name something depends on the machine
that runs the process, so ``--resolve`` asks for that check on this one. No secret's value is
ever printed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import click
from pydantic import BaseModel

from anygate.config import AnygateConfig, ConfigError, load_config
from anygate.config.loader import ENV_PREFIX
from anygate.config.secrets import SecretRef, SecretResolutionError


def secret_refs(value: object, path: str = "") -> Iterator[tuple[str, SecretRef]]:
    """Every secret reference in a loaded config, with its path (``providers.openai.api_key``,
    ``tenants[0].api_keys[1]``)."""
    if isinstance(value, SecretRef):
        yield path or "(root)", value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from secret_refs(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from secret_refs(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from secret_refs(item, f"{path}[{i}]")


def unresolved(config: AnygateConfig) -> list[tuple[str, str]]:
    """(path, why) for each reference that names nothing here (the reason names the variable or
    file, never a value)."""
    problems = []
    for path, ref in secret_refs(config):
        try:
            ref.resolve()
        except SecretResolutionError as exc:
            problems.append((path, str(exc)))
    return problems


def summary(config: AnygateConfig, source: Path, overrides: list[str]) -> list[str]:
    """A few lines that say what the file sets up."""

    def named(items: list[str]) -> str:
        return f"{len(items)} ({', '.join(items)})" if items else "0"

    pools = [
        f"{name} (concurrency {config.pool(name).concurrency})" for name in sorted(config.providers)
    ]
    admin_keys = len(config.admin_api_keys) + len(config.admin_api_key_sha256)
    lines = [
        f"OK: {source}",
        f"  providers: {named([f'{n} ({p.kind})' for n, p in sorted(config.providers.items())])}",
        f"  pools:     {named(pools)}",
        f"  models:    {named(sorted(config.models))}",
        f"  tenants:   {named([t.id for t in config.tenants])}",
        f"  admin keys in the file: {admin_keys}",
        f"  secret references: {len(list(secret_refs(config)))}",
    ]
    if overrides:
        lines.append(f"  with overrides from the environment: {', '.join(overrides)}")
    return lines


@click.group("config")
def config_group() -> None:
    """Check configuration files (docs/cli.md#config-check)."""


@config_group.command("check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--resolve",
    is_flag=True,
    default=False,
    help="Also resolve every secret reference (env:NAME, file:/path) on this machine.",
)
def check(file: Path, resolve: bool) -> None:
    """Load FILE as the processes would (with this environment's ANYGATE__* overrides): OK
    and a summary, or each bad field's path and why (exit status 1)."""
    try:
        config = load_config(file, os.environ)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if resolve:
        problems = unresolved(config)
        if problems:
            raise click.ClickException(str(ConfigError(problems, f"{file}, --resolve")))
    overrides = sorted(name for name in os.environ if name.startswith(ENV_PREFIX))
    for line in summary(config, file, overrides):
        click.echo(line)
    if resolve:
        click.echo("  every secret reference resolves on this machine")
