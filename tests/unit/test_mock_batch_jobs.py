"""The mock's batch state machine: status and lines run by elapsed time, faults and cancel."""

from __future__ import annotations

import pytest

from anygate.ops.mock_provider.batch_jobs import (
    BatchFaultBook,
    BatchFaultRule,
    BatchFaults,
    Timeline,
    parse_batch_rules,
    snapshot,
)

T0 = 1_000.0


def line(total: int = 10, delay: float = 10.0, **faults: object) -> Timeline:
    return Timeline(T0, delay, total, BatchFaults(**faults))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("elapsed", "status", "done"),
    [
        (0.0, "validating", 0),
        (0.99, "validating", 0),
        (1.0, "in_progress", 0),
        (5.0, "in_progress", 5),
        (8.99, "in_progress", 9),
        (9.0, "finalizing", 10),
        (9.99, "finalizing", 10),
        (10.0, "completed", 10),
        (500.0, "completed", 10),
    ],
)
def test_a_healthy_job_moves_through_its_phases_by_elapsed_time(
    elapsed: float, status: str, done: int
) -> None:
    state = snapshot(line(), T0 + elapsed)

    assert (state.status, state.done) == (status, done)


def test_a_completed_job_reports_every_transition_time() -> None:
    state = snapshot(line(), T0 + 10)

    assert state.events == {"in_progress": T0 + 1, "finalizing": T0 + 9, "completed": T0 + 10}
    assert state.terminal


def test_lines_run_monotonically_and_never_exceed_the_total() -> None:
    timeline = line(total=7, delay=3.0)
    counts = [snapshot(timeline, T0 + step / 10).done for step in range(0, 40)]

    assert counts == sorted(counts)
    assert counts[-1] == 7


def test_a_zero_delay_job_is_complete_at_once() -> None:
    state = snapshot(line(delay=0.0), T0)

    assert (state.status, state.done) == ("completed", 10)


def test_invalid_input_fails_when_validation_ends_with_no_lines_run() -> None:
    timeline = line()

    assert snapshot(timeline, T0 + 0.5, invalid=True).status == "validating"
    failed = snapshot(timeline, T0 + 1, invalid=True)
    assert (failed.status, failed.done, failed.events) == ("failed", 0, {"failed": T0 + 1})


def test_a_fail_fault_fails_the_job_like_a_validation_error() -> None:
    state = snapshot(line(fail=True), T0 + 50)

    assert (state.status, state.done) == ("failed", 0)


def test_an_expiring_job_stops_at_its_fraction_and_expires_at_the_end() -> None:
    timeline = line(expire_fraction=0.3)

    running = snapshot(timeline, T0 + 9.5)
    assert (running.status, running.done) == ("in_progress", 3)
    expired = snapshot(timeline, T0 + 10)
    assert (expired.status, expired.done) == ("expired", 3)
    assert expired.events == {"in_progress": T0 + 1, "expired": T0 + 10}


def test_a_late_job_stays_in_progress_for_the_extra_time() -> None:
    timeline = line(late_s=20.0)

    assert snapshot(timeline, T0 + 10).status == "in_progress"
    assert snapshot(timeline, T0 + 29).status == "finalizing"
    assert snapshot(timeline, T0 + 30).status == "completed"


def test_a_cancel_keeps_the_lines_run_so_far_and_then_ends_cancelled() -> None:
    timeline = line()

    cancelling = snapshot(timeline, T0 + 5.5, cancelled_at=T0 + 5)
    assert (cancelling.status, cancelling.done) == ("cancelling", 5)
    cancelled = snapshot(timeline, T0 + 100, cancelled_at=T0 + 5)
    assert (cancelled.status, cancelled.done) == ("cancelled", 5)
    assert cancelled.events == {
        "in_progress": T0 + 1,
        "cancelling": T0 + 5,
        "cancelled": T0 + 6,
    }


def test_a_cancel_while_validating_runs_no_line() -> None:
    state = snapshot(line(), T0 + 100, cancelled_at=T0 + 0.5)

    assert (state.status, state.done) == ("cancelled", 0)
    assert "in_progress" not in state.events


def test_a_cancel_after_the_job_finished_changes_nothing() -> None:
    state = snapshot(line(), T0 + 100, cancelled_at=T0 + 20)

    assert state.status == "completed"


def test_line_errors_hit_every_nth_line_counting_from_one() -> None:
    faults = BatchFaults(line_error_every=3, line_error_status=429)

    assert [faults.line_error(index) for index in range(6)] == [None, None, 429, None, None, 429]
    assert BatchFaults().line_error(0) is None


def test_fault_rules_combine_across_kinds_and_spend_their_uses() -> None:
    book = BatchFaultBook()
    book.add(
        [
            BatchFaultRule(fault="late", late_s=3, times=1),
            BatchFaultRule(fault="line_errors", every=4, status=503),
            BatchFaultRule(fault="expire", fraction=0.25, provider="gemini"),
        ]
    )

    first = book.take("openai")
    assert first == BatchFaults(late_s=3, line_error_every=4, line_error_status=503)
    assert book.take("openai") == BatchFaults(line_error_every=4, line_error_status=503)
    gemini = book.take("gemini")
    assert gemini.expire_fraction == 0.25
    assert [rule.fault for rule in book.rules()] == ["line_errors", "expire"]


def test_only_the_first_matching_rule_of_a_kind_applies() -> None:
    book = BatchFaultBook()
    book.add([BatchFaultRule(fault="late", late_s=1), BatchFaultRule(fault="late", late_s=9)])

    assert book.take("openai").late_s == 1


def test_parse_batch_rules_names_the_bad_field() -> None:
    assert parse_batch_rules({"fault": "fail"}) == [BatchFaultRule(fault="fail")]
    with pytest.raises(ValueError, match=r"at 0\.fraction"):
        parse_batch_rules({"fault": "expire", "fraction": 2})
    with pytest.raises(ValueError, match=r"at 0\.fault"):
        parse_batch_rules([{"fault": "explode"}])
