"""Promises about the jobs themselves, judged from what Redis recorded: none lost, each ended
once, failures only through injected provider faults, no attempt spent on our own faults,
usage and queue counters exact, Redis back to its baseline after retention."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import orjson

from tests.chaos.classify import charged_as_upstream, classify_failure, cut_short, loads
from tests.chaos.evidence import TERMINAL_EVENTS, Check, Evidence, check_of, event_key
from tests.chaos.keyspace import leftovers
from tests.chaos.schedule import STORM_RETRY_AFTER_S, Fault
from tests.chaos.settings import (
    ATTEMPTS_PER_DEPLOYMENT,
    RECLAIM_S,
    VISIBILITY_S,
    WORKER_CONCURRENCY,
)

STORM_SLOTS = 2 * WORKER_CONCURRENCY
"""Calls to the stormed (OpenAI) model that can be in flight when the storm begins: both OpenAI
workers' slots. Beyond those, a storm may draw three calls per Retry-After period (a probe and a
short ramp), as the product reopens a cooled-down deployment gradually."""
REDELIVERY_SLACK_S = 2.0
"""Scheduling slack on two busy cores, on top of the lease and one reclaim interval."""


def lost(ev: Evidence) -> Check:
    bad = []
    for job_id, how in sorted(ev.journal.told.items()):
        job = ev.jobs.get(job_id)
        if job is None or not job.fields:
            bad.append(f"{job_id} ({how}): never found in Redis")
        elif not job.terminal:
            state = "vanished" if job.gone else "still"
            bad.append(f"{job_id} ({how}): {state} {job.status}")
    bad += [
        f"{j.id} (index): {'vanished' if j.gone else 'still'} {j.status or 'unread'}"
        for j in ev.jobs.values()
        if j.id not in ev.journal.told and not j.terminal
    ]
    return check_of(
        "lost",
        bad,
        f"all {len(ev.jobs)} accepted jobs ended",
        "{n} accepted jobs are missing or never ended",
    )


def one_terminal_event(ev: Evidence) -> Check:
    bad = []
    for job in ev.jobs.values():
        ends = [(i, t) for i, t, _d in job.ordered_events() if t in TERMINAL_EVENTS]
        if len(ends) > 1:
            bad.append(f"{job.id}: {', '.join(f'{t}@{i}' for i, t in ends)}")
    return check_of(
        "one terminal event",
        bad,
        "every job ended once",
        "{n} jobs have more than one terminal event",
    )


def batch_lines(ev: Evidence) -> Check:
    run = ev.batch
    bad = list(run.problems)
    if run.status != "completed":
        bad.append(f"batch {run.batch_id or '(not created)'} ended {run.status or 'never'}")
    seen = Counter(str(line.get("custom_id")) for line in run.output + run.errors)
    bad += [f"{cid} appears {n} times" for cid, n in sorted(seen.items()) if n > 1]
    if run.status in {"completed", "failed", "expired", "cancelled"}:
        bad += [f"{cid} missing" for cid in sorted(set(run.expected) - set(seen))]
    bad += [f"{cid} not in the input" for cid in sorted(set(seen) - set(run.expected))]
    for line in run.output:
        body = ((line.get("response") or {}).get("body")) or {}
        text = (((body.get("choices") or [{}])[0]).get("message") or {}).get("content")
        if text is not None and text != run.expected.get(line["custom_id"]):
            bad.append(f"{line['custom_id']}: answer {text!r} is not the mock's")
    return check_of(
        "batch custom_ids",
        bad,
        f"{len(run.expected)} lines: {len(run.output)} answered, {len(run.errors)} "
        "in the error file, none lost or twice",
        "{n} problems with the batch's lines",
    )


def failures(ev: Evidence) -> list[Any]:
    return [
        classify_failure(j.id, j.fields, ev.windows)
        for j in ev.jobs.values()
        if j.status == "failed"
    ]


def failed_while_healthy(ev: Evidence) -> Check:
    bad = [
        f"{f.job_id} ({'sync' if f.sync else 'queued'}, {f.code or '-'}, upstream "
        f"{f.upstream_status}): {f.verdict}"
        for f in failures(ev)
        if f.ours
    ]
    return check_of(
        "failed while the mock was healthy",
        bad,
        "every failed job failed through an injected upstream fault",
        "{n} jobs failed through our own faults or while the provider was healthy",
    )


def storm_failed_no_queued_job(ev: Evidence) -> Check:
    bad = [
        f"{f.job_id} ({f.code}): {f.verdict}"
        for f in failures(ev)
        if not f.sync and (f.upstream_status == 429 or f.code == "circuit_open")
    ]
    return check_of(
        "queued jobs wait out 429s and breakers",
        bad,
        "no queued job failed on a 429 or an open breaker",
        "{n} queued jobs failed on a 429 or an open breaker instead of waiting",
    )


def storm_upstream_calls(ev: Evidence) -> Check:
    bad = []
    for w in ev.windows:
        if w.fault is not Fault.STORM_429:
            continue
        calls = [
            r
            for r in ev.mock_requests
            if r.get("model") == w.target
            and r.get("status") == 429
            and w.start <= float(r.get("started_at") or 0) <= w.end
        ]
        bound = STORM_SLOTS + 3 * math.ceil((w.end - w.start) / STORM_RETRY_AFTER_S)
        if len(calls) > bound:
            bad.append(
                f"{len(calls)} upstream calls answered 429 in a {w.end - w.start:.1f}s "
                f"storm (Retry-After {STORM_RETRY_AFTER_S:g}s); at most {bound} expected"
            )
    return check_of(
        "429 storm upstream calls",
        bad,
        "calls during the storm stayed bounded",
        "{n} storms drew too many upstream calls",
    )


def attempts_on_own_faults(ev: Evidence) -> Check:
    """An attempt charged for our own fault as if the provider had failed, or a route step
    given up early while lost leases had used up some of its attempts."""
    bad = []
    for job in ev.jobs.values():
        history = loads(job.fields.get("history")) or []
        bad += [
            f"{job.id}: attempt {e.get('attempt')} {e.get('outcome')} over our own "
            f"{(e.get('error') or {}).get('code')}: {(e.get('error') or {}).get('message')}"
            for e in charged_as_upstream(history)
        ]
        bad += [
            f"{job.id}: step {s.step} given up ({s.ended}) after {s.upstream_errors} upstream "
            f"errors, {s.own_faults} attempts lost to our faults"
            for s in cut_short(history, ATTEMPTS_PER_DEPLOYMENT)
        ]
    return check_of(
        "no attempt spent on our faults",
        bad,
        "no attempt was charged for our own faults",
        "{n} attempts were charged for our own faults",
    )


def redelivered_in_time(ev: Evidence) -> Check:
    """A killed worker's jobs (their ``retry`` events name it) go back to the queue within the
    lease (``VISIBILITY_S``) and one reclaim interval of the kill, or of the pool's restart
    when no other worker serves it."""
    kills = {w.victim: w for w in ev.windows if w.fault is Fault.KILL_WORKER and w.victim}
    bad = []
    for job in ev.jobs.values():
        for event_id, kind, data in job.ordered_events():
            if kind != "retry" or '"lease_expired"' not in data:
                continue
            w = kills.get(str(orjson.loads(data).get("worker")))
            if w is None:
                continue
            at = event_key(event_id)[0] / 1000
            due = max(w.start + VISIBILITY_S, w.end) + RECLAIM_S + REDELIVERY_SLACK_S
            if at > due:
                bad.append(
                    f"{job.id}: redelivered {at - w.start:.1f}s after {w.target} "
                    f"was killed (due within {due - w.start:.1f}s)"
                )
    return check_of(
        "redelivered in time",
        bad,
        "a killed worker's jobs were redelivered within a lease",
        "{n} jobs of killed workers waited too long for redelivery",
    )


def usage_counters(ev: Evidence) -> Check:
    expected: dict[str, Counter[str]] = {}
    for job in ev.jobs.values():
        if job.status != "succeeded":
            continue
        usage = loads(job.fields.get("usage")) or {}
        sums = expected.setdefault(job.fields["tenant"], Counter())
        sums["requests"] += 1
        sums["tokens"] += int(usage.get("prompt_tokens") or 0)
        sums["tokens"] += int(usage.get("completion_tokens") or 0)
    bad = []
    for tenant in sorted(set(expected) | set(ev.usage)):
        for name in ("requests", "tokens"):
            want, got = expected.get(tenant, Counter())[name], ev.usage.get(tenant, {}).get(name, 0)
            if want != got:
                bad.append(f"{tenant} {name}: counters say {got}, its succeeded jobs sum to {want}")
    return check_of(
        "usage counters",
        bad,
        "usage counters equal the sums of job usage",
        "{n} usage counters differ from their jobs' usage",
    )


def counters_zero(ev: Evidence) -> Check:
    bad = [f"{name} = {value}" for name, value in sorted(ev.counters.items()) if value]
    return check_of(
        "queue counters back to zero",
        bad,
        "tqueued, tinflight, leases and pool stats are all zero",
        "{n} queue counters are not zero",
    )


def retention(ev: Evidence) -> Check:
    extra = leftovers(ev.before, ev.after, ev.allowed)
    bad = [f"{fam}: {n} keys more than before the load" for fam, n in sorted(extra.items())]
    mib = 1024 * 1024
    summary = (
        f"per-job keys back to the baseline (used_memory {ev.before.used_memory / mib:.1f}"
        f" -> {ev.after.used_memory / mib:.1f} MiB)"
    )
    return check_of(
        "retention back to baseline",
        bad,
        summary,
        "{n} per-job key families did not return to their baseline",
    )
