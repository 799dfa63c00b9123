"""What Redis says it spent: ``INFO commandstats`` and ``INFO cpu`` before and after a piece of
work, and ``SLOWLOG`` entries turned into calls and µs per command, a script by its name.

``INFO commandstats`` counts every script under one ``EVALSHA`` line and, on Redis 7, counts the
commands a script runs inside under their own names too; ``SLOWLOG`` logs those with the client
address ``?:0``. Both time a command the same way: wall time inside it, so on a loaded machine
they include the moments the Redis thread was preempted. ``INFO cpu``'s main-thread figure is
CPU time, the one a shard's throughput is bound by.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from anygate.broker.scripts import SCRIPT_NAMES, Scripts

IGNORED = frozenset(
    {"info", "slowlog", "config", "client", "hello", "ping", "select", "multi", "exec"}
)
"""The bench's own reads of Redis and connection set-up, left out of the per-job figures."""


@dataclass(frozen=True)
class Snap:
    """``INFO commandstats`` and ``INFO cpu`` at one moment."""

    t: float
    cpu_s: float
    """Main thread, user + system: the one a shard's throughput is bound by."""
    process_cpu_s: float
    """The whole process: main thread plus AOF fsync and other background threads."""
    commands: dict[str, tuple[int, int]]
    """command → (calls, usec)."""


async def snap(redis: Redis) -> Snap:
    stats = await redis.info("commandstats")
    cpu = await redis.info("cpu")
    commands = {
        name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
        for name, v in stats.items()
    }
    return Snap(
        t=time.perf_counter(),
        cpu_s=float(cpu["used_cpu_user_main_thread"]) + float(cpu["used_cpu_sys_main_thread"]),
        process_cpu_s=float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        commands=commands,
    )


@dataclass(frozen=True)
class Delta:
    seconds: float
    cpu_us: float
    process_cpu_us: float
    commands: dict[str, tuple[int, int]]

    def of(self, command: str) -> tuple[int, int]:
        return self.commands.get(command, (0, 0))


def delta(before: Snap, after: Snap, idle_cpu_us_per_s: float = 0.0) -> Delta:
    """``after - before``; ``idle_cpu_us_per_s``: Redis's own background ticks (``serverCron``),
    taken off the CPU so a slow phase is not charged for the clock."""
    seconds = after.t - before.t
    idle = idle_cpu_us_per_s * seconds
    commands: dict[str, tuple[int, int]] = {}
    for name, (calls, usec) in after.commands.items():
        was = before.commands.get(name, (0, 0))
        if name not in IGNORED and calls > was[0]:
            commands[name] = (calls - was[0], usec - was[1])
    return Delta(
        seconds=seconds,
        cpu_us=(after.cpu_s - before.cpu_s) * 1e6 - idle,
        process_cpu_us=(after.process_cpu_s - before.process_cpu_s) * 1e6 - idle,
        commands=commands,
    )


async def idle_rate(redis: Redis, seconds: float = 2.0) -> float:
    """Redis's main-thread CPU µs per second with no client: its cron, the AOF's fsync."""
    before = await snap(redis)
    await asyncio.sleep(seconds)
    after = await snap(redis)
    return (after.cpu_s - before.cpu_s) * 1e6 / (after.t - before.t)


async def load_scripts(redis: Redis) -> None:
    """``SCRIPT LOAD`` every broker script first: a measured phase's first calls would otherwise
    be answered NOSCRIPT and sent again, counting two calls (and two parses) per job."""
    scripts = Scripts(redis)
    for name in SCRIPT_NAMES:
        await redis.script_load(getattr(scripts, name).spec.source)


def script_names() -> dict[str, str]:
    """SHA → script name, from the very sources the broker loads."""
    scripts = Scripts(Redis())  # never connects: only the SHAs are read
    return {getattr(scripts, name).spec.sha: name for name in SCRIPT_NAMES}


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


SCRIPT_CLIENT = "?:0"
"""SLOWLOG's client address for the commands a script runs: already inside its EVALSHA's time."""


def attribute(entries: list[dict[str, Any]], names: dict[str, str]) -> dict[str, Any]:
    """SLOWLOG entries → calls and µs per top-level command (a script by its name); the commands
    scripts ran inside are counted apart (``inner``): their time is in their script's."""
    calls: Counter[str] = Counter()
    usec: Counter[str] = Counter()
    inner: Counter[str] = Counter()
    for entry in entries:
        words = _text(entry["command"]).split(" ", 2)
        command = words[0].lower()
        if _text(entry.get("client_address", "")) == SCRIPT_CLIENT:
            inner[command] += 1
            continue
        if command in IGNORED:
            continue
        if command in ("evalsha", "eval") and len(words) > 1:
            sha = words[1] if command == "evalsha" else ""
            command = f"script {names.get(sha, 'unknown')}"
        calls[command] += 1
        usec[command] += int(entry["duration"])
    return {"calls": dict(calls), "usec": dict(usec), "inner": dict(inner)}


def attribution_rows(found: dict[str, Any], requests: int) -> list[dict[str, Any]]:
    total = sum(found["usec"].values())
    rows = [
        {
            "command": command,
            "calls_per_request": calls / requests,
            "us_per_call": found["usec"][command] / calls,
            "us_per_request": found["usec"][command] / requests,
            "share": found["usec"][command] / total,
        }
        for command, calls in found["calls"].items()
    ]
    return sorted(rows, key=lambda r: -r["us_per_request"])
