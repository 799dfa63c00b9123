"""What a chaos run leaves to judge (``Evidence``) and the form of a verdict (``Check``).

Pure data: ``scenario.py`` fills an ``Evidence``; ``job_checks.py`` and ``client_checks.py``
each hold one function per promise, returning a ``Check`` whose message names what broke.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.chaos.batch import BatchRun
from tests.chaos.collector import JobSeen
from tests.chaos.journal import Journal
from tests.chaos.keyspace import Census
from tests.chaos.logscan import Finding
from tests.chaos.schedule import Window
from tests.chaos.stack import Exit
from tests.chaos.webhooks import Delivery

TERMINAL_EVENTS = frozenset({"completed", "failed", "cancelled", "expired"})
SHOWN = 8
"""Examples listed per failed check; the JSON report has them all."""


@dataclass
class Evidence:
    jobs: dict[str, JobSeen]
    journal: Journal
    windows: list[Window]
    batch: BatchRun
    deliveries: list[Delivery]
    usage: dict[str, dict[str, int]]
    """Tenant -> ``requests`` and ``tokens`` summed over its ``usage:<tenant>:<YYYYMMDD>``."""
    counters: dict[str, int]
    """Every queue counter that must be back at zero, by key and field."""
    before: Census
    after: Census
    allowed: set[str]
    """Per-job keys kept on purpose (batch lines, kept for the batch's window)."""
    exits: list[Exit]
    problems: list[str]
    findings: list[Finding]
    mock_requests: list[dict[str, Any]]
    started: float
    """When the load began (times in messages are offsets from it)."""


@dataclass
class Check:
    name: str
    passed: bool
    summary: str
    details: list[str] = field(default_factory=list)

    def message(self) -> str:
        shown = "\n  ".join(self.details[:SHOWN])
        more = f"\n  … and {len(self.details) - SHOWN} more" if len(self.details) > SHOWN else ""
        return f"{self.name}: {self.summary}" + (f"\n  {shown}{more}" if shown else "")


def check_of(name: str, bad: list[str], ok: str, fail: str) -> Check:
    """Passed when nothing is ``bad``; ``fail`` may say how many with ``{n}``."""
    return Check(name, not bad, fail.format(n=len(bad)) if bad else ok, bad)


def event_key(event_id: str) -> tuple[int, int]:
    """Stream ids compare as (ms, seq) pairs; the first part is the event's time."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)
