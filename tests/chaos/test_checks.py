"""The chaos suite's judgements, on made-up evidence: each check must fail on the fault it is
there to catch (and pass without it), or a green chaos run would prove nothing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import orjson

from tests.chaos.batch import BatchRun
from tests.chaos.classify import charged_as_upstream, classify_failure, cut_short
from tests.chaos.client_checks import no_hangs, sse_order, stream_text
from tests.chaos.collector import JobSeen
from tests.chaos.evidence import Evidence
from tests.chaos.job_checks import (
    lost,
    one_terminal_event,
    redelivered_in_time,
    storm_upstream_calls,
    usage_counters,
)
from tests.chaos.journal import Journal, Stream
from tests.chaos.keyspace import Census, family, leftovers
from tests.chaos.logscan import tracebacks
from tests.chaos.schedule import Fault, Window, build_schedule
from tests.chaos.settings import QUICK, SOAK
from tests.chaos.soak import flatness

T0 = 1_700_000_000.0
BURST = Window(Fault.BURST_5XX, "gemini-2.5-flash", T0 + 10, T0 + 15)
PAUSE = Window(Fault.REDIS_PAUSE, "", T0 + 30, T0 + 40)


def evidence(**changes: Any) -> Evidence:
    base: dict[str, Any] = {
        "jobs": {},
        "journal": Journal(),
        "windows": [BURST, PAUSE],
        "batch": BatchRun("http://x", 0),
        "deliveries": [],
        "usage": {},
        "counters": {},
        "before": Census(),
        "after": Census(),
        "allowed": set(),
        "exits": [],
        "problems": [],
        "findings": [],
        "mock_requests": [],
        "started": T0,
    }
    return Evidence(**{**base, **changes})


def job(
    job_id: str, status: str, events: Sequence[tuple[str, str, Any]] = (), **fields: Any
) -> JobSeen:
    seen = JobSeen(job_id, {"status": status, "tenant": "acme", **fields})
    for event_id, kind, data in events:
        seen.events[event_id] = (kind, orjson.dumps(data).decode())
    return seen


def chunk(text: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": text}}]}


def completed(text: str) -> dict[str, Any]:
    return {"result": {"choices": [{"message": {"content": text}}]}}


class TestSchedule:
    def test_a_seed_gives_the_same_schedule(self) -> None:
        assert build_schedule(QUICK) == build_schedule(QUICK)

    def test_one_pass_holds_every_fault(self) -> None:
        assert {s.fault for s in build_schedule(QUICK)} == set(Fault)

    def test_the_soak_kills_no_api_or_control_and_fits_its_length(self) -> None:
        steps = build_schedule(SOAK)
        assert not {s.fault for s in steps} & {Fault.KILL_API, Fault.KILL_CONTROL}
        assert sum(s.gap_s + s.length_s for s in steps) < SOAK.soak_s


class TestFailures:
    def test_an_adapter_crash_is_ours_even_inside_a_fault_window(self) -> None:
        error = orjson.dumps({"code": "adapter_error", "message": "internal (TimeoutError)"})
        fields = {"error": error.decode(), "finished_ms": str(int((T0 + 12) * 1000))}
        assert classify_failure("j", fields, [BURST]).ours

    def test_a_5xx_inside_the_burst_is_the_providers(self) -> None:
        fields = {
            "error": '{"code": null, "upstream_status": 503}',
            "finished_ms": str(int((T0 + 12) * 1000)),
        }
        assert not classify_failure("j", fields, [BURST]).ours

    def test_a_5xx_while_the_mock_was_healthy_is_ours(self) -> None:
        fields = {"error": '{"upstream_status": 503}', "finished_ms": str(int((T0 + 60) * 1000))}
        assert classify_failure("j", fields, [BURST]).verdict == (
            "failed while the provider was healthy"
        )

    def test_an_open_breaker_fails_only_a_synchronous_call(self) -> None:
        at = str(int((T0 + 12) * 1000))
        fields = {"error": '{"code": "circuit_open"}', "finished_ms": at}
        assert classify_failure("j", fields, [BURST]).ours
        assert not classify_failure("j", {**fields, "reply_to": "api1"}, [BURST]).ours


class TestAttempts:
    UPSTREAM: ClassVar[dict[str, Any]] = {
        "outcome": "retry",
        "step": 0,
        "error": {"code": None, "status": 503},
    }

    def test_a_lost_lease_that_cut_a_step_short_is_found(self) -> None:
        history = [
            {"attempt": 1, "outcome": "lease_expired"},
            self.UPSTREAM,
            {**self.UPSTREAM, "outcome": "fail"},
        ]
        assert [s.own_faults for s in cut_short(history, 3)] == [1]

    def test_a_step_given_up_after_its_upstream_errors_is_fine(self) -> None:
        history = [self.UPSTREAM, self.UPSTREAM, {**self.UPSTREAM, "outcome": "fail"}]
        assert cut_short(history, 3) == []
        assert charged_as_upstream(history) == []

    def test_a_redis_timeout_retried_like_a_provider_error_is_charged(self) -> None:
        crash = {
            "outcome": "retry",
            "step": 0,
            "error": {
                "code": "adapter_error",
                "status": None,
                "message": "internal error in the openai adapter (TimeoutError)",
            },
        }
        assert charged_as_upstream([crash, self.UPSTREAM]) == [crash]


class TestReconcile:
    def test_a_job_a_client_was_told_of_that_never_ended_is_lost(self) -> None:
        journal = Journal(told={"a": "202", "b": "header"})
        jobs = {"a": job("a", "succeeded"), "b": job("b", "running")}
        assert not lost(evidence(jobs=jobs, journal=journal)).passed
        jobs["b"] = job("b", "failed")
        assert lost(evidence(jobs=jobs, journal=journal)).passed

    def test_two_terminal_events_are_caught(self) -> None:
        events: list[tuple[str, str, Any]] = [("1-0", "completed", {}), ("2-0", "completed", {})]
        jobs = {"a": job("a", "succeeded", events)}
        assert not one_terminal_event(evidence(jobs=jobs)).passed

    def test_an_event_log_that_concatenates_two_attempts_is_caught(self) -> None:
        twice = [
            ("1-0", "chunk", chunk("Mock ")),
            ("2-0", "chunk", chunk("Mock reply")),
            ("3-0", "completed", completed("Mock reply")),
        ]
        retried = [twice[0], ("1-5", "retry", {}), *twice[1:]]
        bad = {"a": job("a", "succeeded", twice, stream="1")}
        good = {"a": job("a", "succeeded", retried, stream="1")}
        assert not stream_text(evidence(jobs=bad)).passed
        assert stream_text(evidence(jobs=good)).passed

    def test_a_complete_stream_with_the_wrong_text_is_caught(self) -> None:
        journal = Journal()
        journal.streams.append(
            Stream("openai", "p", "Mock reply", text="Mock Mock reply", complete=True)
        )
        assert not stream_text(evidence(journal=journal)).passed

    def test_an_sse_event_id_seen_twice_is_caught(self) -> None:
        journal = Journal()
        journal.streams.append(
            Stream(
                "job_sse",
                "p",
                "x",
                event_ids=["1-0", "2-0", "2-0"],
                event_types=["chunk", "chunk", "completed"],
            )
        )
        assert not sse_order(evidence(journal=journal)).passed

    def test_a_slow_failure_during_a_redis_outage_is_a_hang(self) -> None:
        journal = Journal()
        call = journal.call("sync_chat", 0)
        call.started, call.ended, call.outcome, call.status = T0 + 31, T0 + 40, "http_error", 502
        assert not no_hangs(evidence(journal=journal)).passed
        call.ended = T0 + 32
        assert no_hangs(evidence(journal=journal)).passed

    def test_a_late_redelivery_after_a_kill_is_caught(self) -> None:
        kill = Window(Fault.KILL_WORKER, "worker0", T0, T0 + 2, victim="openai-1")
        for delay, worker, ok in (
            (4.2, "openai-1", True),
            (9.0, "openai-1", False),
            (9.0, "openai-2", True),
        ):  # another worker's lease
            stamp = f"{int((T0 + delay) * 1000)}-0"
            retry = {"reason": "lease_expired", "worker": worker}
            jobs = {"a": job("a", "succeeded", [(stamp, "retry", retry)])}
            assert redelivered_in_time(evidence(jobs=jobs, windows=[kill])).passed is ok

    def test_usage_counters_must_match_the_jobs(self) -> None:
        usage = '{"prompt_tokens": 3, "completion_tokens": 4}'
        jobs = {"a": job("a", "succeeded", usage=usage)}
        right = {"acme": {"requests": 1, "tokens": 7}}
        assert usage_counters(evidence(jobs=jobs, usage=right)).passed
        wrong = {"acme": {"requests": 2, "tokens": 7}}
        assert not usage_counters(evidence(jobs=jobs, usage=wrong)).passed

    def test_a_storm_that_draws_calls_in_bursts_is_caught(self) -> None:
        storm = Window(Fault.STORM_429, "gpt-4o-mini", T0, T0 + 10)
        calls = [
            {"model": "gpt-4o-mini", "status": 429, "started_at": T0 + i / 100} for i in range(500)
        ]
        assert not storm_upstream_calls(evidence(windows=[storm], mock_requests=calls)).passed
        assert storm_upstream_calls(evidence(windows=[storm], mock_requests=calls[:30])).passed


class TestKeyspace:
    def test_families_are_named_after_the_prefix(self) -> None:
        assert family("ag:{chaos}:job:job_1", "ag:{chaos}:") == "job"
        assert family("arq:result:x", "ag:{chaos}:") == "arq"

    def test_per_job_keys_above_the_baseline_are_leftovers_unless_allowed(self) -> None:
        after = Census(per_job_keys={"job": ["j1", "j2"], "lane": ["l1"]})
        assert leftovers(Census(counts={"lane": 1}), after, {"j1"}) == {"job": 1}


class TestLogs:
    def test_tracebacks_and_logged_exceptions_are_found(self, tmp_path: Path) -> None:
        log = tmp_path / "control-0.log"
        log.write_text(
            '{"event": "fine", "level": "info"}\n'
            "Traceback (most recent call last):\n"
            '  File "x.py", line 1, in f\n'
            "TypeError: meth() got multiple values for argument 'event'\n"
            '{"event": "boom", "exception": "Traceback ...\\nKeyError: 1"}\n'
        )
        found = tracebacks({"control-0": log})
        assert [(f.line, f.summary) for f in found] == [
            (2, "TypeError: meth() got multiple values for argument 'event'"),
            (5, "boom: KeyError: 1"),
        ]


class TestFlatness:
    def test_a_growing_series_is_not_flat(self) -> None:
        grows = [100 * 2**20 + i * 2**20 for i in range(40)]
        assert not flatness("api0", grows, 8 * 2**20, 40).flat

    def test_a_steady_series_is_flat(self) -> None:
        steady = [100 * 2**20 + (i % 3) * 2**20 for i in range(40)]
        assert flatness("api0", steady, 8 * 2**20, 40).flat
