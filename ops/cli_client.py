"""What the job and batch commands share: a ``Client`` from the connection context, the client's
errors as one-line command errors, and the parsing of option values.

The HTTP work is ``anygate.client``'s (its retries on 429/503, its resumable streams); this
module only adapts it to a command line.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator

import click

from anygate.client import AnygateError, APIStatusError, Client, WaitTimeoutError
from anygate.ops.cli_context import Sources, connection

JOB_FAILED_EXIT = 1
"""The exit status of a command whose job or batch ended without its answer."""
INTERRUPTED_EXIT = 130
"""Ctrl-C, as a shell reports a command that SIGINT ended."""

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


def open_client(sources: Sources, *, timeout: float = 60.0) -> Client:
    """A synchronous client keyed with the tenant key the context finds."""
    found = connection(sources)
    with client_errors():
        return Client(found.url, found.key, timeout=timeout)


@contextlib.contextmanager
def client_errors() -> Iterator[None]:
    """The client's errors as ``click.ClickException`` (exit 1): the gateway's message, its
    code and the field it names, and the request id to quote; never a key."""
    try:
        yield
    except WaitTimeoutError as exc:
        raise click.ClickException(str(exc)) from None
    except APIStatusError as exc:
        where = f" (request id {exc.request_id})" if exc.request_id else ""
        raise click.ClickException(f"{exc}{where}") from None
    except (AnygateError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


@contextlib.contextmanager
def leave_on_interrupt(what: str, follow_up: str) -> Iterator[None]:
    """Ctrl-C while following a job or batch stops following, not the work: say so, and how
    to look again (exit status 130, no traceback)."""
    try:
        yield
    except KeyboardInterrupt:
        click.echo(f"\nstopped following {what}; it goes on: {follow_up}", err=True)
        raise SystemExit(INTERRUPTED_EXIT) from None


def parse_metadata(pairs: tuple[str, ...]) -> dict[str, str] | None:
    """``--metadata k=v`` (repeatable) as a dict; None when none was given."""
    found: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--metadata")
        found[name] = value
    return found or None


def parse_duration(text: str, param: str) -> float:
    """``90``, ``90s``, ``10m``, ``2h``, ``1d`` in seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise click.BadParameter(
            f"expected a duration such as 90s, 10m or 2h, got {text!r}", param_hint=param
        )
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def parse_deadline(text: str | None, now: float | None = None) -> float | None:
    """``--deadline``: a duration from now (``30s``, ``10m``, ``2h``), or ``@UNIX`` seconds; the
    job's deadline as Unix seconds."""
    if text is None:
        return None
    if text.startswith("@"):
        try:
            return float(text[1:])
        except ValueError:
            raise click.BadParameter(
                f"expected @<unix seconds>, got {text!r}", param_hint="--deadline"
            ) from None
    return (time.time() if now is None else now) + parse_duration(text, "--deadline")
