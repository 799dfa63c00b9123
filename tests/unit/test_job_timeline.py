"""The console's job timeline (api/console/job_timeline.py): events and history in, entries out."""

from __future__ import annotations

import orjson

from anygate.api.console.job_timeline import attempts_of, build_timeline
from anygate.broker.models import JobEvent

CREATED = 1_700_000_000_000


def ev(ms: int, etype: str, data: object, attempt: int | None = None, seq: int = 0) -> JobEvent:
    return JobEvent(f"{CREATED + ms}-{seq}", etype, orjson.dumps(data).decode(), attempt)


QUEUED = JobEvent("0-1", "queued", '{"id":"job_1","status":"queued"}')


def test_a_streamed_job_counts_its_chunks_with_first_and_last_time() -> None:
    events = [
        QUEUED,
        ev(10, "started", {"id": "job_1", "attempt": 1, "worker": "w1"}, 1),
        *[ev(20 + i, "chunk", {"choices": []}, 1) for i in range(5)],
        ev(40, "completed", {"status": "succeeded", "usage": {"total_tokens": 12}}, 1),
    ]
    entries = build_timeline(events, created_ms=CREATED, first_deployment="openai:gpt-4o-mini")
    assert [e.kind for e in entries] == ["queued", "started", "chunks", "completed"]
    assert entries[0].at_ms == CREATED
    assert dict(entries[1].details)["deployment"] == "openai:gpt-4o-mini"
    chunks = entries[2]
    assert (chunks.count, chunks.at_ms, chunks.until_ms) == (5, CREATED + 20, CREATED + 24)
    assert dict(entries[3].details)["usage"] == "12 total tokens"
    assert attempts_of(entries) == 1


def test_a_retry_names_the_failed_attempt_its_deployment_and_the_upstream_error() -> None:
    history = [
        {
            "attempt": 1,
            "step": 0,
            "provider": "openai",
            "model": "gpt-4o-mini",
            "outcome": "retry",
            "error": {"code": "upstream_error", "message": "boom", "status": 500},
        }
    ]
    events = [
        QUEUED,
        ev(10, "started", {"attempt": 1}, 1),
        ev(11, "chunk", {}, 1),
        ev(20, "retry", {"attempt": 2, "reason": "upstream_error", "provider": "openai"}, 2),
        ev(30, "started", {"attempt": 2}, 2),
        ev(31, "chunk", {}, 2),
        ev(32, "chunk", {}, 2),
        ev(40, "completed", {"status": "succeeded"}, 2),
    ]
    entries = build_timeline(
        events, created_ms=CREATED, history=history, first_deployment="openai:gpt-4o-mini"
    )
    kinds = [(e.kind, e.attempt) for e in entries]
    assert kinds == [
        ("queued", None),
        ("started", 1),
        ("chunks", 1),
        ("retry", 2),
        ("started", 2),
        ("chunks", 2),
        ("completed", 2),
    ]
    retry = dict(entries[3].details)
    assert retry["failed on"] == "openai:gpt-4o-mini"
    assert retry["upstream error"] == "upstream_error (upstream 500): boom"
    assert retry["reason"] == "upstream_error"
    assert [e.count for e in entries if e.kind == "chunks"] == [1, 2]
    assert attempts_of(entries) == 2


def test_a_fallback_moves_the_next_attempt_to_the_retry_events_deployment() -> None:
    events = [
        QUEUED,
        ev(10, "started", {"attempt": 1}, 1),
        ev(
            20,
            "retry",
            {"attempt": 2, "reason": "fallback", "provider": "gemini", "model": "gemini-2.5-flash"},
            2,
        ),
        ev(30, "started", {"attempt": 2}, 2),
        ev(40, "failed", {"error": {"code": "bad", "message": "no"}}, 2),
    ]
    entries = build_timeline(events, created_ms=CREATED, first_deployment="openai:gpt-4o")
    assert dict(entries[1].details)["deployment"] == "openai:gpt-4o"
    assert dict(entries[3].details)["deployment"] == "gemini:gemini-2.5-flash"
    assert dict(entries[4].details)["error"] == "bad: no"


def test_a_cancel_and_unknown_or_malformed_events_are_kept_without_reading_them() -> None:
    events = [
        QUEUED,
        JobEvent(f"{CREATED + 5}-0", "started", "not json", 1),
        JobEvent(f"{CREATED + 6}-0", "something_new", "{}", None),
        ev(7, "cancelled", {"reason": "cancelled_by_client"}),
    ]
    entries = build_timeline(events, created_ms=CREATED)
    assert [e.kind for e in entries] == ["queued", "started", "something_new", "cancelled"]
    assert dict(entries[1].details) == {}
    assert dict(entries[3].details)["reason"] == "cancelled_by_client"


def test_a_provider_batch_start_says_so() -> None:
    events = [
        QUEUED,
        ev(
            10, "started", {"attempt": 1, "execution": "provider_batch", "provider_batch": "pb1"}, 1
        ),
    ]
    details = dict(build_timeline(events, created_ms=CREATED)[1].details)
    assert details["execution"] == "provider_batch"
    assert details["provider batch"] == "pb1"
