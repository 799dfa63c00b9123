"""Promises about what the clients lived: streamed answers never mix attempts, the job event
stream sends each event once and in order, no request hangs, webhooks arrive signed, and
the processes neither died on their own nor logged a traceback."""

from __future__ import annotations

import orjson

from tests.chaos.calls import LONG_POLL_S
from tests.chaos.collector import JobSeen
from tests.chaos.evidence import TERMINAL_EVENTS, Check, Evidence, check_of, event_key
from tests.chaos.journal import WAITING_KINDS

FAST_S = 4.0
"""An answer that should be immediate (a submit, a poll, a refusal) takes at most this long:
the product's 2 s bound for failing fast during an outage, plus slack for two busy cores."""


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
    return check_of(
        "streamed text consistent",
        bad,
        "every complete stream holds one answer",
        "{n} streams or event logs mix or lose text",
    )


def sse_order(ev: Evidence) -> Check:
    bad = []
    for s in (s for s in ev.journal.streams if s.surface == "job_sse"):
        keys = [event_key(i) for i in s.event_ids]
        if len(set(keys)) != len(keys):
            bad.append(f"{s.job_id}: an event id came twice across {s.reconnects} reconnects")
        elif keys != sorted(keys):
            bad.append(f"{s.job_id}: event ids out of order")
        if not any(t in TERMINAL_EVENTS for t in s.event_types):
            bad.append(f"{s.job_id}: never saw the job end ({s.interrupted})")
    return check_of(
        "job SSE ids once, in order",
        bad,
        "every job SSE reader saw each event once, in order, to the end",
        "{n} job SSE readers saw repeats, disorder or no end",
    )


ASKED_WAIT_S = {"poll_wait": float(LONG_POLL_S)}
"""How long a kind of call asks the API to wait: a long-poll that waited its ``wait`` out and
then found Redis away answers 503 within ``FAST_S`` after it, as the product promises."""


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
        elif c.status == 503 and c.took > FAST_S + ASKED_WAIT_S.get(c.kind, 0.0):
            bad.append(f"{where}: a 503 after {c.took:.1f}s")
        elif in_outage and c.outcome not in {"ok", "left"} and c.took > FAST_S:
            bad.append(f"{where}, in a Redis outage: failed ({c.outcome}) after {c.took:.1f}s")
        elif c.status in {429, 503} and not c.retry_after:
            bad.append(f"{where}: {c.status} without Retry-After")
    return check_of(
        "no request hangs",
        bad,
        "every request was answered in time; refusals were fast, with Retry-After",
        "{n} requests hung, were slow to fail, or lacked Retry-After",
    )


def webhooks(ev: Evidence) -> Check:
    got: dict[str, list[bool]] = {}
    for delivery in ev.deliveries:
        got.setdefault(delivery.delivery_id, []).append(delivery.signed)
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
    return check_of(
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
    return check_of(
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
    return check_of(
        "logs free of tracebacks",
        bad,
        "no process logged an unhandled exception",
        f"{len(ev.findings)} tracebacks or logged exceptions ({{n}} kinds) in the processes' logs",
    )
