"""The tests' log check: every process a test starts has its log read for errors, and the test
fails, naming the process, its command and the lines, when one logged an error nobody expected.

``log_scan.py`` decides what an error is; this module remembers which processes still have log
to read and how far each was read, so a long-lived process (the session's mock provider, a
module's stack) is judged on what it logged during each test, and each error lands on the test
that was running. A process leaves the watch list once it has exited and its log was read to
the end; a SIGKILLed process's log simply stops, which is no error.

What a test provokes on purpose it declares, exactly: ``@pytest.mark.expect_log(pattern,
process=...)`` for the test, or ``ManagedProcess.expect_log(pattern)`` for one process. An
expectation that never matched fails the test too (unless ``required=False``), so a stale one
does not linger once the error it allowed is gone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tests.support.log_scan import LogExpectation, LogFinding, describe, judge, scan

# Set to keep every process log in the temp dir for post-mortems; by default a log lives as long
# as its ManagedProcess object (failure messages already carry the lines that matter).
KEEP_LOGS_ENV = "ANYGATE_KEEP_PROCESS_LOGS"
HOW_TO_EXPECT = (
    "A test that provokes such an error on purpose declares exactly that error: "
    "@pytest.mark.expect_log(pattern, process=kind) on the test, or "
    "process.expect_log(pattern) on the process (tests/support/process_logs.py)."
)


class WatchedProcess(Protocol):
    """What the check needs of a process (``processes.ManagedProcess`` is one)."""

    @property
    def label(self) -> str:
        """Its kind, e.g. ``api``, ``worker``, ``control``, ``mock-provider``, ``dev``."""

    @property
    def command(self) -> str:
        """Its pid and command line, for the failure message."""

    @property
    def log_path(self) -> Path: ...

    @property
    def running(self) -> bool: ...

    @property
    def expected_logs(self) -> Sequence[LogExpectation]: ...


class LogCheckError(AssertionError):
    """A process logged an error that no expectation allows, or an expected one never came."""


@dataclass
class _Cursor:
    """How far one process's log has been read, and which of its own expectations matched."""

    offset: int = 0
    line_no: int = 1
    used: set[LogExpectation] = field(default_factory=set)


def _read_new_lines(process: WatchedProcess, cursor: _Cursor, *, final: bool) -> list[str]:
    """The log's lines past ``cursor``, which moves on. While the process runs only complete
    lines are taken: a line being written is read whole next time."""
    try:
        with process.log_path.open("rb") as log:
            log.seek(cursor.offset)
            data = log.read()
    except FileNotFoundError:
        return []
    if not final:
        data = data[: data.rfind(b"\n") + 1]
    cursor.offset += len(data)
    if not data:
        return []
    lines = data.decode("utf-8", errors="replace").removesuffix("\n").split("\n")
    cursor.line_no += len(lines)
    return lines


class ProcessLogs:
    """The processes whose logs are still to be read, and the running test's expectations."""

    def __init__(self) -> None:
        self._watched: dict[WatchedProcess, _Cursor] = {}
        self._test: list[LogExpectation] = []
        self._test_used: set[LogExpectation] = set()

    def watch(self, process: WatchedProcess) -> None:
        self._watched.setdefault(process, _Cursor())

    def begin_test(self, expectations: Iterable[LogExpectation]) -> None:
        self._test = list(expectations)
        self._test_used = set()

    def end_test(self) -> str | None:
        """Read everything still unread; the test's report, or None when all is well. What a
        test expected is forgotten here, so a shared process's shutdown is judged without it."""
        problems = self._problems(list(self._watched))
        missing = [e for e in self._test if e.required and e not in self._test_used]
        if missing:
            shown = ", ".join(str(e) for e in missing)
            problems.append(f"the test expected errors that no process logged: {shown}")
        self._test, self._test_used = [], set()
        return _report(problems)

    def read(self, processes: Iterable[WatchedProcess] | None = None) -> str | None:
        """Read what ``processes`` (default: all watched) logged since the last read; a report
        of the unexpected errors, or None."""
        chosen = list(self._watched) if processes is None else list(processes)
        return _report(self._problems(chosen))

    def check(self, processes: Iterable[WatchedProcess] | None = None) -> None:
        """``read``, raising ``LogCheckError`` with the report."""
        __tracebackhide__ = True  # the report says it all; pytest shows no frame of ours
        report = self.read(processes)
        if report is not None:
            raise LogCheckError(report)

    def _problems(self, processes: Sequence[WatchedProcess]) -> list[str]:
        problems = []
        for process in processes:
            cursor = self._watched.get(process)
            if cursor is None:
                continue  # already read to its end
            final = not process.running
            first = cursor.line_no
            lines = _read_new_lines(process, cursor, final=final)
            found = self._judge(process, cursor, scan(lines, first))
            if found:
                problems.append(_describe_process(process, found))
            if final:
                del self._watched[process]
                missing = [e for e in process.expected_logs if e.required and e not in cursor.used]
                if missing:
                    shown = ", ".join(str(e) for e in missing)
                    problems.append(f"{process.command} never logged the expected {shown}")
        return problems

    def _judge(
        self, process: WatchedProcess, cursor: _Cursor, findings: list[LogFinding]
    ) -> list[LogFinding]:
        own = list(process.expected_logs)
        unexpected, used = judge(findings, process.label, [*own, *self._test])
        cursor.used |= used & set(own)
        self._test_used |= used & set(self._test)
        return unexpected


def _describe_process(process: WatchedProcess, found: list[LogFinding]) -> str:
    shown = "\n".join(describe(f) for f in found)
    return (
        f"{process.label} {process.command} logged {len(found)} unexpected error(s) (log: "
        f"{process.log_path}, kept with {KEEP_LOGS_ENV}=1):\n{shown}"
    )


def _report(problems: list[str]) -> str | None:
    if not problems:
        return None
    return "\n\n".join([*problems, HOW_TO_EXPECT])


# The one watch list of this test session: ``ManagedProcess`` adds itself on start, the
# fixtures in ``tests/conftest.py`` read it around each test.
PROCESS_LOGS = ProcessLogs()
