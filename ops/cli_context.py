"""Where the user-facing commands find the gateway: its URL, a tenant key and an admin key.

Each value comes from the first place that has it (docs/cli.md#connection):

1. a flag (``--url``, ``--key``, ``--admin-key``);
2. the environment (``ANYGATE_URL``, ``ANYGATE_KEY``, ``ANYGATE_ADMIN_KEY``);
3. the file given with ``--env-file``, else ``./.anygate/dev.env`` (what ``anygate dev``
   writes: ``export NAME=value`` lines).

A missing value is an error that says every place it was looked for. Keys are never printed:
``Connection`` hides them from ``repr`` and the messages name only where a key was looked for.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from anygate.ops.env_file import parse_env_file

URL_ENV = "ANYGATE_URL"
KEY_ENV = "ANYGATE_KEY"
ADMIN_KEY_ENV = "ANYGATE_ADMIN_KEY"
DEV_ENV_FILE = Path(".anygate") / "dev.env"
"""Relative to the working directory, as ``anygate dev``'s default ``--data-dir`` is."""


class ContextError(click.ClickException):
    """A value the command needs is nowhere to be found, or a file cannot be read."""


@dataclass(frozen=True)
class Sources:
    """What the resolution reads, passed in so it is testable without a process environment."""

    flags: Mapping[str, str | None]
    environ: Mapping[str, str]
    env_file: Path | None
    """``--env-file``: replaces the default ``./.anygate/dev.env`` when given."""
    cwd: Path = field(default_factory=Path.cwd)

    @property
    def file_path(self) -> Path:
        return self.env_file if self.env_file is not None else self.cwd / DEV_ENV_FILE

    def file_values(self) -> dict[str, str] | None:
        """The file's assignments; None when there is no such file (an explicit ``--env-file``
        that cannot be read is an error, not an absence)."""
        path = self.file_path
        try:
            return parse_env_file(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            if self.env_file is not None:
                raise ContextError(f"--env-file {path}: no such file") from None
            return None
        except OSError as exc:
            raise ContextError(f"cannot read {path}: {exc.strerror}") from None


@dataclass(frozen=True)
class Setting:
    """One value the commands look up: its flag and its variable name."""

    flag: str
    env: str
    what: str


URL = Setting("--url", URL_ENV, "gateway URL")
KEY = Setting("--key", KEY_ENV, "tenant key")
ADMIN_KEY = Setting("--admin-key", ADMIN_KEY_ENV, "admin key")


def lookup(setting: Setting, sources: Sources, *, files: bool = True) -> str | None:
    """The value from the first place that has it: a flag, the environment, then (``files``)
    the env file."""
    value = sources.flags.get(setting.env) or sources.environ.get(setting.env)
    if value:
        return value
    if not files:
        return None
    found = sources.file_values()
    return (found or {}).get(setting.env) or None


def require(setting: Setting, sources: Sources) -> str:
    value = lookup(setting, sources)
    if value is None:
        raise ContextError(missing_message(setting, sources))
    return value


def missing_message(setting: Setting, sources: Sources) -> str:
    path = sources.file_path
    state = "not set there" if path.exists() else "no such file"
    return (
        f"no {setting.what} found: looked for {setting.flag}, ${setting.env} and {path} ({state}). "
        f"Pass {setting.flag}, set {setting.env}, or run `anygate dev` in this folder."
    )


@dataclass(frozen=True)
class Connection:
    """A resolved URL with one key; the key is left out of ``repr`` (logs, tracebacks)."""

    url: str
    key: str = field(repr=False)


def connection(sources: Sources, *, admin: bool = False) -> Connection:
    """The URL and a tenant key (``admin``: the admin key)."""
    url = require(URL, sources).rstrip("/")
    return Connection(url, require(ADMIN_KEY if admin else KEY, sources))


def admin_connection(sources: Sources, *, files: bool = True) -> Connection | None:
    """The URL and admin key when both are to be found (``files``: the env file counts), else
    None."""
    url = lookup(URL, sources, files=files)
    key = lookup(ADMIN_KEY, sources, files=files)
    if url and key:
        return Connection(url.rstrip("/"), key)
    return None


# --- click -----------------------------------------------------------------------------------


def connection_options(
    *, key: bool = False, admin_key: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--url``, ``--env-file`` and the key flags a command uses (``--key``, ``--admin-key``);
    its callback gets them as one ``sources`` keyword argument."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def with_sources(*args: Any, url: str | None, env_file: Path | None, **kwargs: Any) -> Any:
            flags = {
                URL_ENV: url,
                KEY_ENV: kwargs.pop("key", None),
                ADMIN_KEY_ENV: kwargs.pop("admin_key", None),
            }
            sources = Sources(flags=flags, environ=os.environ, env_file=env_file)
            return command(*args, sources=sources, **kwargs)

        options = [
            click.option("--url", default=None, metavar="URL", help=f"Gateway URL (${URL_ENV})."),
            click.option(
                "--env-file",
                type=click.Path(dir_okay=False, path_type=Path),
                default=None,
                help=f"Read unset values from this file instead of ./{DEV_ENV_FILE}.",
            ),
        ]
        if key:
            options.append(
                click.option("--key", default=None, metavar="KEY", help=f"Tenant key (${KEY_ENV}).")
            )
        if admin_key:
            options.append(
                click.option(
                    "--admin-key",
                    default=None,
                    metavar="KEY",
                    help=f"Admin key (${ADMIN_KEY_ENV}).",
                )
            )
        decorated: Callable[..., Any] = with_sources
        for option in reversed(options):
            decorated = option(decorated)
        return decorated

    return decorate
