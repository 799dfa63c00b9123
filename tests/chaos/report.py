"""The run's report: the fault windows, what became of every job, what the clients saw, and
each check's verdict, as a printed table and as JSON (every example, not only the first few)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.chaos.classify import loads, own_fault_entries
from tests.chaos.client_checks import FAST_S
from tests.chaos.evidence import Check, Evidence
from tests.chaos.job_checks import failures
from tests.chaos.journal import Stream

REPORT_KEY = pytest.StashKey[list[str]]()
"""Where a run leaves its printed report for the session's terminal summary."""


def figures(ev: Evidence) -> dict[str, Any]:
    jobs = list(ev.jobs.values())
    origin = Counter(
        "batch line"
        if j.fields.get("batch")
        else "synchronous"
        if j.fields.get("reply_to")
        else "job API"
        for j in jobs
    )
    histories = {j.id: loads(j.fields.get("history")) or [] for j in jobs}
    calls = ev.journal.calls
    return {
        "accepted": len(jobs),
        "by origin": dict(sorted(origin.items())),
        "by status": dict(sorted(Counter(j.status or "unread" for j in jobs).items())),
        "failed by reason": dict(
            sorted(
                Counter(
                    f"{f.code or '-'} (upstream {f.upstream_status}) -> {f.verdict}"
                    for f in failures(ev)
                ).items()
            )
        ),
        "retried": sum(any(t == "retry" for _i, t, _d in j.ordered_events()) for j in jobs),
        "redelivered": sum(
            any(e.get("outcome") == "lease_expired" for e in h) for h in histories.values()
        ),
        "attempt entries on our own faults": sum(
            len(own_fault_entries(h)) for h in histories.values()
        ),
        "requests": len(calls),
        "refused fast (503 + Retry-After)": sum(
            1 for c in calls if c.status == 503 and c.retry_after and c.took <= FAST_S
        ),
        "client-visible errors": dict(
            sorted(
                Counter(
                    f"{c.kind}: {c.status or '-'} {c.outcome} {c.code or ''}".rstrip()
                    for c in calls
                    if c.outcome not in {"ok", "left"}
                ).items()
            )
        ),
        "streams": dict(
            sorted(Counter(f"{s.surface}: {_ending(s)}" for s in ev.journal.streams).items())
        ),
        "webhook deliveries (subjects)": [
            len(ev.deliveries),
            len({d.delivery_id for d in ev.deliveries}),
        ],
        "batch": {"id": ev.batch.batch_id, "status": ev.batch.status, **ev.batch.counts},
        "redis used_memory before/after": [ev.before.used_memory, ev.after.used_memory],
        "key families before/after": {
            fam: [ev.before.counts.get(fam, 0), ev.after.counts.get(fam, 0)]
            for fam in sorted(set(ev.before.counts) | set(ev.after.counts))
        },
    }


def _ending(stream: Stream) -> str:
    return "complete" if stream.complete else "left" if stream.left_early else "cut"


def windows(ev: Evidence) -> list[dict[str, Any]]:
    return [
        {
            "fault": w.fault.value,
            "target": w.target,
            "at_s": round(w.start - ev.started, 1),
            "length_s": round(w.end - w.start, 1),
        }
        for w in ev.windows
    ]


def as_json(ev: Evidence, checks: list[Check], meta: dict[str, Any]) -> dict[str, Any]:
    return {
        **meta,
        "windows": windows(ev),
        "figures": figures(ev),
        "checks": [
            {"name": c.name, "passed": c.passed, "summary": c.summary, "details": c.details}
            for c in checks
        ],
    }


def table(report: dict[str, Any]) -> str:
    """The printed form: one line per figure, then one per check."""
    lines = [
        f"chaos run ({report['profile']}, seed {report['seed']}): "
        f"{report['wall_s']:.0f}s wall, {report['load_s']:.0f}s of load"
    ]
    lines.append("fault schedule:")
    lines += [
        f"  +{w['at_s']:>6.1f}s  {w['fault']:<18} {w['target']:<18} {w['length_s']:.1f}s"
        for w in report["windows"]
    ]
    lines.append("figures:")
    for name, value in report["figures"].items():
        if isinstance(value, dict) and len(value) > 3:
            lines.append(f"  {name}:")
            lines += [f"      {k:<60} {v}" for k, v in value.items()]
        else:
            lines.append(f"  {name:<40} {value}")
    lines.append("checks:")
    lines += [
        f"  {'PASS' if c['passed'] else 'FAIL'}  {c['name']:<40} {c['summary']}"
        for c in report["checks"]
    ]
    return "\n".join(lines)
