"""Hold what the clients were told and what Redis recorded against each other: one function per
promise, each returning a ``Check`` whose message says what broke and for which jobs.

Pure: everything comes in an ``Evidence`` gathered by ``scenario.py``; nothing here does I/O.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from anygate.workers.webhooks import verify
from tests.chaos.batch import BatchRun
from tests.chaos.classify import classify_failure, cut_short, loads
from tests.chaos.collector import JobSeen
from tests.chaos.journal import WAITING_KINDS, Journal
from tests.chaos.keyspace import Census, leftovers
from tests.chaos.logscan import Finding
from tests.chaos.schedule import STORM_RETRY_AFTER_S, Fault, Window
from tests.chaos.settings import ATTEMPTS_PER_DEPLOYMENT, WORKER_CONCURRENCY
from tests.chaos.stack import Exit

FAST_S = 4.0
"""An answer that should be immediate (a submit, a poll, a refusal) takes at most this long:
the product's 2 s bound for failing fast during an outage, plus slack for two busy cores."""
STORM_SLOTS = 2 * WORKER_CONCURRENCY
"""Calls to the stormed (OpenAI) model that can be in flight when the storm begins: both OpenAI
workers' slots. Beyond those, a storm may draw three calls per Retry-After period (a probe and a
short ramp), as the product reopens a cooled-down deployment gradually."""
TERMINAL_EVENTS = frozenset({"completed", "failed", "cancelled", "expired"})
SHOWN = 8
"""Examples listed per failed check; the JSON report has them all."""


@dataclass
class Evidence:
    jobs: dict[str, JobSeen]
    journal: Journal
    windows: list[Window]
    batch: BatchRun
    deliveries: list[tuple[dict[str, str], bytes]]
    webhook_secret: str
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


def _check(name: str, bad: list[str], ok: str, fail: str) -> Check:
    return Check(name, not bad, fail.format(n=len(bad)) if bad else ok, bad)


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
    return _check(
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
    return _check(
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
    return _check(
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
    return _check(
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
    return _check(
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
    return _check(
        "429 storm upstream calls",
        bad,
        "calls during the storm stayed bounded",
        "{n} storms drew too many upstream calls",
    )


def attempts_on_own_faults(ev: Evidence) -> Check:
    bad = []
    for job in ev.jobs.values():
        history = loads(job.fields.get("history")) or []
        bad += [
            f"{job.id}: step {s.step} given up ({s.ended}) after {s.upstream_errors} upstream "
            f"errors, {s.own_faults} attempts lost to our faults"
            for s in cut_short(history, ATTEMPTS_PER_DEPLOYMENT)
        ]
    return _check(
        "no attempt spent on our faults",
        bad,
        "no step was given up early because of our own faults",
        "{n} route steps were given up with attempts spent on our own faults",
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
    return _check(
        "usage counters",
        bad,
        "usage counters equal the sums of job usage",
        "{n} usage counters differ from their jobs' usage",
    )


def counters_zero(ev: Evidence) -> Check:
    bad = [f"{name} = {value}" for name, value in sorted(ev.counters.items()) if value]
    return _check(
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
    return _check(
        "retention back to baseline",
        bad,
        summary,
        "{n} per-job key families did not return to their baseline",
    )


def _chunk_text(data: str) -> str:
    chunk = orjson.loads(data)
    return "".join((c.get("delta") or {}).get("content") or "" for c in chunk.get("choices") or [])


def _answer_after_last_retry(job: JobSeen) -> tuple[str, str | None]:
    """The text of the chunks after the last ``retry``, and the ``completed`` result's text."""
    text, result = "", None
    for _i, kind, data in job.ordered_events():
        if kind == "retry":
            text = ""
        elif kind == "chunk":
            text += _chunk_text(data)
        elif kind == "completed":
            found = (orjson.loads(data).get("result") or {}).get("choices") or [{}]
            result = (found[0].get("message") or {}).get("content")
    return text, result


def stream_text(ev: Evidence) -> Check:
    bad = []
    for s in ev.journal.streams:
        if s.complete and s.text != s.expected:
            bad.append(
                f"{s.surface} stream {s.job_id}: read {s.text!r}, the mock said "
                f"{s.expected!r} (retries seen: {s.retries_seen})"
            )
    bad += [
        f"sync answer {job_id}: {text!r}, the mock said {want!r}"
        for job_id, want, text in ev.journal.sync_results
        if text != want
    ]
    for job in ev.jobs.values():
        if job.status == "succeeded" and job.fields.get("stream") == "1":
            text, result = _answer_after_last_retry(job)
            if result is not None and text != result:
                bad.append(
                    f"event log of {job.id}: chunks since the last retry say {text!r}, "
                    f"the result {result!r}"
                )
    return _check(
        "streamed text consistent",
        bad,
        "every complete stream holds one answer",
        "{n} streams or event logs mix or lose text",
    )


def _id_key(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


def sse_order(ev: Evidence) -> Check:
    bad = []
    for s in (s for s in ev.journal.streams if s.surface == "job_sse"):
        keys = [_id_key(i) for i in s.event_ids]
        if len(set(keys)) != len(keys):
            bad.append(f"{s.job_id}: an event id came twice across {s.reconnects} reconnects")
        elif keys != sorted(keys):
            bad.append(f"{s.job_id}: event ids out of order")
        if not any(t in TERMINAL_EVENTS for t in s.event_types):
            bad.append(f"{s.job_id}: never saw the job end ({s.interrupted})")
    return _check(
        "job SSE ids once, in order",
        bad,
        "every job SSE reader saw each event once, in order, to the end",
        "{n} job SSE readers saw repeats, disorder or no end",
    )


def no_hangs(ev: Evidence) -> Check:
    """No call reaches its client timeout; calls that need no job answer within ``FAST_S``;
    a refusal (503) is fast and says when to retry; and during a Redis outage a call either
    succeeds or fails within ``FAST_S``."""
    outages = [w for w in ev.windows if w.fault.redis]
    bad = []
    for c in ev.journal.calls:
        where = f"{c.kind} on api{c.api} at +{c.started - ev.started:.1f}s"
        in_outage = any(w.start <= c.started <= w.end for w in outages)
        if c.outcome == "timeout" or not c.ended:
            bad.append(f"{where}: no answer within the client timeout ({c.detail[:60]})")
        elif c.kind not in WAITING_KINDS and c.took > FAST_S:
            bad.append(f"{where}: took {c.took:.1f}s (status {c.status})")
        elif c.status == 503 and c.took > FAST_S:
            bad.append(f"{where}: a 503 after {c.took:.1f}s")
        elif in_outage and c.outcome not in {"ok", "left"} and c.took > FAST_S:
            bad.append(f"{where}, in a Redis outage: failed ({c.outcome}) after {c.took:.1f}s")
        elif c.status in {429, 503} and not c.retry_after:
            bad.append(f"{where}: {c.status} without Retry-After")
    return _check(
        "no request hangs",
        bad,
        "every request was answered in time; refusals were fast, with Retry-After",
        "{n} requests hung, were slow to fail, or lacked Retry-After",
    )


def webhooks(ev: Evidence) -> Check:
    secret = ev.webhook_secret.encode()
    got: dict[str, list[bool]] = {}
    for headers, body in ev.deliveries:
        delivery = headers.get("x-anygate-delivery", "")
        got.setdefault(delivery, []).append(
            verify(secret, body, headers.get("x-anygate-signature", ""))
        )
    bad = []
    wanted = [j for j in sorted(ev.journal.webhook_jobs) if j in ev.jobs and ev.jobs[j].terminal]
    if ev.batch.batch_id and ev.batch.status:
        wanted.append(ev.batch.batch_id)
    for subject in wanted:
        signed = got.get(f"dlv_{subject}")
        if not signed:
            bad.append(f"{subject}: no delivery")
        elif not all(signed):
            bad.append(f"{subject}: a delivery with a bad signature")
    return _check(
        "webhooks delivered",
        bad,
        f"{len(wanted)} webhooks delivered, signed",
        "{n} webhooks missing or badly signed",
    )


def processes(ev: Evidence) -> Check:
    bad = [
        f"{e.slot} (pid {e.pid}) exited with {e.code} on its own: "
        f"{e.log_tail.splitlines()[-1] if e.log_tail else ''}"
        for e in ev.exits
    ]
    bad += ev.problems
    return _check(
        "no process died on its own",
        bad,
        "only the processes we killed went down",
        "{n} processes exited on their own or would not restart",
    )


def logs(ev: Evidence) -> Check:
    """Findings grouped by process slot and exception, with where each was first seen."""
    groups: dict[tuple[str, str], list[str]] = {}
    for f in ev.findings:
        slot = f.log.rsplit("-", 1)[0]
        groups.setdefault((slot, f.summary), []).append(f"{f.log}:{f.line}")
    bad = [
        f"{slot}: {len(where)}x {summary} (first at {where[0]})"
        for (slot, summary), where in sorted(groups.items())
    ]
    return _check(
        "logs free of tracebacks",
        bad,
        "no process logged an unhandled exception",
        f"{len(ev.findings)} tracebacks or logged exceptions ({{n}} kinds) in the processes' logs",
    )


CHECKS: dict[str, Callable[[Evidence], Check]] = {
    "lost": lost,
    "one_terminal_event": one_terminal_event,
    "batch": batch_lines,
    "failed_while_healthy": failed_while_healthy,
    "queued_wait": storm_failed_no_queued_job,
    "storm_calls": storm_upstream_calls,
    "own_fault_attempts": attempts_on_own_faults,
    "usage": usage_counters,
    "counters": counters_zero,
    "retention": retention,
    "stream_text": stream_text,
    "sse_order": sse_order,
    "no_hangs": no_hangs,
    "webhooks": webhooks,
    "processes": processes,
    "logs": logs,
}
