"""``anygate status``: pools, lanes, workers and deployment health, live (docs/cli.md#status).

Everything comes from the admin API (``/admin/queues``, ``/admin/workers``,
``/admin/deployments``), so it needs a URL and an admin key, never Redis. On a terminal it
redraws in place (``rich.live``) every ``--interval`` seconds until Ctrl-C; ``--once``, or
stdout not being a terminal, prints one frame.
"""

from __future__ import annotations

import sys
import time

import click
from rich.console import Console, RenderableType
from rich.live import Live

from anygate.ops.admin_client import AdminClient
from anygate.ops.cli_context import Sources, connection, connection_options
from anygate.ops.cli_output import console as make_console
from anygate.ops.status_view import Snapshot, render, render_error


def fetch(admin: AdminClient) -> Snapshot:
    queues = admin.get("/admin/queues")
    workers = admin.get("/admin/workers")
    deployments = admin.get("/admin/deployments")
    return Snapshot(
        url=admin.url,
        queues=queues["data"],
        workers=workers["data"],
        deployments=deployments["data"],
        breaker_enabled=bool(deployments.get("breaker_enabled", True)),
    )


def watch(admin: AdminClient, console: Console, interval: float) -> None:
    """Redraw until Ctrl-C (on a terminal in place, elsewhere frame after frame); a failed
    refresh shows why and the view keeps trying."""

    def frame() -> RenderableType:
        try:
            return render(fetch(admin), live=True)
        except click.ClickException as exc:
            return render_error(admin.url, exc.message, interval)

    if not console.is_terminal:  # a pipe or a log: one frame after another
        while True:
            console.print(frame())
            console.file.flush()
            time.sleep(interval)
    with Live(frame(), console=console, auto_refresh=False, transient=False) as live:
        while True:
            time.sleep(interval)
            live.update(frame(), refresh=True)


@click.command()
@click.option(
    "--watch/--once",
    "live",
    default=None,
    help="Redraw until Ctrl-C (default on a terminal), or print one frame (default otherwise).",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.2),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes.",
)
@connection_options(admin_key=True)
def status(sources: Sources, live: bool | None, interval: float) -> None:
    """Pools and lanes (depth, oldest age), in flight, workers (heartbeat, busy/concurrency)
    and each deployment's breaker and cool-down, from the admin API."""
    console = make_console()
    if live is None:
        live = console.is_terminal and sys.stdout.isatty()
    with AdminClient(connection(sources, admin=True)) as admin:
        if not live:
            console.print(render(fetch(admin)))
            return
        try:
            watch(admin, console, interval)
        except KeyboardInterrupt:
            return
