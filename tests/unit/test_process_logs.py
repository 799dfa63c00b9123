"""The log check's bookkeeping: each error reported once, on the read that first sees it; a
shared process judged per test; expectations that must be met. Processes are faked by files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.log_scan import LogExpectation
from tests.support.process_logs import LogCheckError, ProcessLogs

BOOM = "ERROR:    Exception in ASGI application\nTraceback (most recent call last):\nE: boom\n"


@dataclass(eq=False)
class FakeProcess:
    log_path: Path
    label: str = "api"
    running: bool = True
    expected_logs: list[LogExpectation] = field(default_factory=list)

    @property
    def command(self) -> str:
        return f"process 1 (anygate {self.label})"

    def write(self, text: str) -> None:
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(text)


@pytest.fixture
def proc(tmp_path: Path) -> FakeProcess:
    (tmp_path / "p.log").touch()
    return FakeProcess(tmp_path / "p.log")


def test_a_clean_log_reads_clean(proc: FakeProcess) -> None:
    logs = ProcessLogs()
    logs.watch(proc)
    proc.write('{"event": "worker started", "level": "info"}\n')
    assert logs.read() is None


def test_an_error_is_reported_once_with_process_command_and_lines(proc: FakeProcess) -> None:
    logs = ProcessLogs()
    logs.watch(proc)
    proc.write("starting\n" + BOOM)
    report = logs.read()
    assert report is not None
    assert "process 1 (anygate api) logged 1 unexpected error(s)" in report
    assert "line 2 (uvicorn):\n    ERROR:    Exception in ASGI application" in report
    assert "    E: boom" in report
    assert logs.read() is None, "already reported"


def test_check_raises_the_report(proc: FakeProcess) -> None:
    logs = ProcessLogs()
    logs.watch(proc)
    proc.write(BOOM)
    with pytest.raises(LogCheckError, match="Exception in ASGI application"):
        logs.check([proc])


def test_a_line_still_being_written_is_read_whole_next_time(proc: FakeProcess) -> None:
    logs = ProcessLogs()
    logs.watch(proc)
    proc.write('{"event": "x", "level": "info"}\n{"event": "unhandled error", "lev')
    assert logs.read() is None
    proc.write('el": "error"}\n')
    report = logs.read()
    assert report is not None
    assert 'line 2 (structlog):\n    {"event": "unhandled error", "level": "error"}' in report


def test_an_error_lands_on_the_test_during_which_it_was_logged(proc: FakeProcess) -> None:
    """A process shared by several tests (the session's mock) is judged per test."""
    logs = ProcessLogs()
    logs.watch(proc)
    logs.begin_test([])
    proc.write("fine\n")
    assert logs.end_test() is None
    logs.begin_test([])
    proc.write(BOOM)
    assert logs.end_test() is not None


def test_a_test_expectation_allows_its_error_during_that_test_only(proc: FakeProcess) -> None:
    logs = ProcessLogs()
    logs.watch(proc)
    logs.begin_test([LogExpectation("E: boom", process="api")])
    proc.write(BOOM)
    assert logs.read() is None
    assert logs.end_test() is None
    logs.begin_test([])
    proc.write(BOOM)
    assert logs.end_test() is not None


def test_an_expected_error_that_never_came_fails_the_test(proc: FakeProcess) -> None:
    logs = ProcessLogs()
    logs.watch(proc)
    logs.begin_test([LogExpectation("E: boom"), LogExpectation("maybe", required=False)])
    report = logs.end_test()
    assert report is not None
    assert "the test expected errors that no process logged: /E: boom/" in report
    assert "maybe" not in report


def test_a_process_expectation_must_be_met_by_the_time_it_exits(proc: FakeProcess) -> None:
    logs = ProcessLogs()
    proc.expected_logs.append(LogExpectation("E: boom", process="api"))
    logs.watch(proc)
    assert logs.read() is None, "it may still come while the process runs"
    proc.running = False
    report = logs.read()
    assert report is not None
    assert "never logged the expected /E: boom/ in api" in report


def test_an_exited_process_is_read_to_its_last_byte_then_forgotten(proc: FakeProcess) -> None:
    logs = ProcessLogs()
    logs.watch(proc)
    proc.running = False
    proc.write("Fatal Python error: Aborted")  # no newline: the process died mid-line
    report = logs.read()
    assert report is not None
    assert "Fatal Python error: Aborted" in report
    proc.write(BOOM)
    assert logs.read() is None, "forgotten once read to its end"


def test_a_log_that_is_gone_reads_as_empty(tmp_path: Path) -> None:
    logs = ProcessLogs()
    logs.watch(FakeProcess(tmp_path / "never-written.log", running=False))
    assert logs.read() is None
