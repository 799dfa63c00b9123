"""What ``anygate status`` draws: the admin API's queues, workers and deployments as rich tables.

Pure: a ``Snapshot`` of the three answers in, renderables out, so the drawing is testable
without a terminal or a gateway (the command, ``cli_status.py``, fetches and refreshes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

STATE_STYLES = {
    "ok": "green",
    "recovering": "yellow",
    "cooling_down": "yellow",
    "half_open": "yellow",
    "open": "bold red",
}


@dataclass(frozen=True)
class Snapshot:
    """The admin API's answers at one moment (``taken_at``: Unix seconds, this machine's)."""

    url: str
    queues: list[dict[str, Any]]
    workers: list[dict[str, Any]]
    deployments: list[dict[str, Any]]
    breaker_enabled: bool = True
    taken_at: float = field(default_factory=time.time)


def format_age(seconds: float | None) -> str:
    """``0.4s``, ``12s``, ``3m05s``, ``2h01m``; ``-`` for none."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def pools_table(snapshot: Snapshot) -> Table:
    workers = {pool["id"]: pool for pool in snapshot.workers}
    table = Table(title="Pools", title_justify="left", expand=False)
    for name in ("pool", "state", "queued", "in flight", "delayed", "redeliver", "dead"):
        table.add_column(name, justify="left" if name in {"pool", "state"} else "right")
    table.add_column("workers", justify="right")
    table.add_column("busy/concurrency", justify="right")
    for queue in snapshot.queues:
        pool = workers.get(queue["id"], {})
        listed = pool.get("workers", [])
        busy = sum(w["in_flight"] for w in listed if w["alive"])
        state = Text("paused", style="yellow") if queue["paused"] else Text("active", "green")
        table.add_row(
            queue["id"],
            state,
            str(queue["queued"]),
            str(queue["in_flight"]),
            str(queue["delayed"]),
            str(queue["redeliver"]),
            str(queue["dead_letters"]),
            f"{pool.get('alive', 0)}/{len(listed)}",
            f"{busy}/{pool.get('concurrency', 0)}",
        )
    return table


def lanes_table(snapshot: Snapshot) -> Table:
    table = Table(title="Lanes waiting", title_justify="left")
    for name in ("pool", "class", "tenant"):
        table.add_column(name)
    table.add_column("depth", justify="right")
    table.add_column("oldest", justify="right")
    rows = 0
    for queue in snapshot.queues:
        for lane in queue["lanes"]:
            table.add_row(
                queue["id"],
                lane["class"],
                lane["tenant"],
                str(lane["depth"]),
                format_age(lane["oldest_age_s"]),
            )
            rows += 1
    if not rows:
        table.add_row(Text("no jobs waiting", style="dim"), "", "", "", "")
    return table


def workers_table(snapshot: Snapshot) -> Table:
    table = Table(title="Workers", title_justify="left")
    table.add_column("pool")
    table.add_column("worker", overflow="fold")
    table.add_column("heartbeat", justify="right")
    table.add_column("busy/concurrency", justify="right")
    table.add_column("alive")
    rows = 0
    for pool in snapshot.workers:
        for worker in pool["workers"]:
            alive = Text("yes", "green") if worker["alive"] else Text("no", "bold red")
            table.add_row(
                pool["id"],
                worker["id"],
                format_age(snapshot.taken_at - worker["last_heartbeat"]) + " ago",
                f"{worker['in_flight']}/{worker['concurrency']}",
                alive,
            )
            rows += 1
    if not rows:
        table.add_row("", Text("no workers registered", style="bold red"), "", "", "")
    return table


def deployments_table(snapshot: Snapshot) -> Table:
    title = "Deployments" if snapshot.breaker_enabled else "Deployments (breaker disabled)"
    table = Table(title=title, title_justify="left")
    for name in ("deployment", "pool", "aliases", "state", "breaker"):
        table.add_column(name, overflow="fold")
    table.add_column("open for", justify="right")
    table.add_column("cool-down", justify="right")
    for dep in snapshot.deployments:
        state = dep["state"]
        table.add_row(
            dep["id"],
            dep["pool"],
            ", ".join(dep["aliases"]),
            Text(state, style=STATE_STYLES.get(state, "")),
            Text(dep["breaker"], style=STATE_STYLES.get(dep["breaker"], "")),
            format_age(dep["breaker_open_for_s"]),
            format_age(dep["cooling_down_for_s"]),
        )
    return table


def header(snapshot: Snapshot, *, live: bool) -> Text:
    when = time.strftime("%H:%M:%S", time.localtime(snapshot.taken_at))
    text = Text.assemble(("anygate ", "bold"), snapshot.url, f"  updated {when}")
    if live:
        text.append("  (Ctrl-C to quit)", style="dim")
    return text


def render(snapshot: Snapshot, *, live: bool = False) -> RenderableType:
    return Group(
        header(snapshot, live=live),
        pools_table(snapshot),
        lanes_table(snapshot),
        workers_table(snapshot),
        deployments_table(snapshot),
    )


def render_error(url: str, message: str, interval: float) -> RenderableType:
    """In the live view, a failed refresh replaces the tables until the next one works."""
    return Group(
        Text.assemble(("anygate ", "bold"), url),
        Text(f"cannot refresh: {message} (trying again every {interval:g}s)", style="bold red"),
    )
