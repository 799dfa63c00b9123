"""Find the errors in a process's log: the pure half of the tests' log check.

Our processes write two kinds of line to the combined stdout/stderr the tests capture: structlog
events rendered as JSON (``ops/logging.py``: ``{"event": ..., "level": ..., "exception": ...}``,
a traceback folded into the ``exception`` string) and plain lines from the stdlib loggers of the
libraries under them (``logging.basicConfig(format="%(message)s")``): arq's job lines, asyncio's
exception handler, uvicorn's ``ERROR:    ...`` lines and Python's own tracebacks. A finding is
one error with the lines that belong to it (a traceback block, or the line that announces one
and the traceback after it), so a test can allow exactly the error it provokes and nothing else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

TRACEBACK = "Traceback (most recent call last)"

# Plain-text lines that are an error whatever the process, with the kind each is reported as.
_TEXT_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("traceback", re.compile(re.escape(TRACEBACK))),
    # asyncio's default exception handler (asyncio/base_events.py, and uvloop's twin)
    ("asyncio", re.compile(r"Task exception was never retrieved")),
    ("asyncio", re.compile(r"Future exception was never retrieved")),
    ("asyncio", re.compile(r"Exception in callback ")),
    ("asyncio", re.compile(r"Task was destroyed but it is pending")),
    ("asyncio", re.compile(r"Unhandled error in exception handler")),
    # arq/worker.py run_job: "%6.2fs ! %s failed, %s: %s" and "... max retries %d exceeded"
    ("arq", re.compile(r"^\s*-?\d+\.\d+s ! \S+ (failed, |max retries \d+ exceeded)")),
    ("arq", re.compile(r"^deserializing job \S+ failed")),
    # uvicorn's default formatter: "%(levelprefix)s %(message)s"
    ("uvicorn", re.compile(r"Exception in ASGI application")),
    ("uvicorn", re.compile(r"^(ERROR|CRITICAL):\s")),
    ("fatal", re.compile(r"^Fatal Python error:")),
)
_ERROR_LEVELS = frozenset({"error", "critical", "exception", "fatal"})
# What may follow a traceback header and still be part of the same block.
_CHAIN = re.compile(
    r"^(During handling of the above exception, another exception occurred:"
    r"|The above exception was the direct cause of the following exception:)"
)


@dataclass(frozen=True)
class LogFinding:
    """One error in a log: where it starts (1-based line number), its kind and its lines."""

    line_no: int
    kind: str
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass(frozen=True)
class LogExpectation:
    """An error a test provokes on purpose: a regex searched in a finding's lines, optionally
    only in the logs of one kind of process (``api``, ``worker``, ``control``...).

    A pattern that matches an empty string would allow every error: it is refused, so an
    expectation always names the error it allows. ``required`` expectations must be seen.
    """

    pattern: str
    process: str | None = None
    required: bool = True

    def __post_init__(self) -> None:
        if re.compile(self.pattern).search("") is not None:
            raise ValueError(f"log expectation {self.pattern!r} matches anything: name the error")

    def allows(self, finding: LogFinding, process: str) -> bool:
        if self.process is not None and self.process != process:
            return False
        return re.search(self.pattern, finding.text) is not None

    def __str__(self) -> str:
        where = f" in {self.process}" if self.process else ""
        return f"/{self.pattern}/{where}"


def _json_event(line: str) -> dict[str, object] | None:
    """The structlog event a line renders, or None when it is not a JSON object."""
    stripped = line.strip()
    if not stripped.startswith("{"):
        return None
    try:
        event = json.loads(stripped)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def _json_error(line: str, event: dict[str, object]) -> tuple[str, ...] | None:
    """The lines of a structlog error event (its traceback unfolded), or None when the event
    is below error level and carries no exception."""
    exception = event.get("exception") or event.get("exc_info")
    level = str(event.get("level", "")).lower()
    if exception is None and level not in _ERROR_LEVELS and TRACEBACK not in line:
        return None
    extra = str(exception).splitlines() if isinstance(exception, str) else []
    return (line, *extra)


def _text_kind(line: str) -> str | None:
    for kind, pattern in _TEXT_PATTERNS:
        if pattern.search(line):
            return kind
    return None


def _traceback_end(lines: Sequence[str], start: int) -> int:
    """Index just past the traceback block whose header is at ``start``.

    A block is its header, indented frame lines, blank lines and chained tracebacks, and ends
    with the first unindented line (the exception itself) not followed by a chained one.
    """
    i = start + 1
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line[0].isspace() or _CHAIN.match(line) or TRACEBACK in line:
            i += 1
            continue
        # ``line`` is the exception: the block ends with it unless a chained one follows.
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        if j < len(lines) and _CHAIN.match(lines[j]):
            i = j
            continue
        return i + 1
    return i


def _own_traceback(lines: Sequence[str], i: int) -> int | None:
    """Where the traceback that belongs to the error line ``i`` starts: on that line, or just
    below it, after at most one line of context (asyncio's ``future: <Task ...>`` or
    ``handle: <Handle ...>``; arq's "failed" line has none)."""
    for j in range(i, min(i + 3, len(lines))):
        if j > i and _json_event(lines[j]) is not None:
            return None  # a structlog event of its own
        if TRACEBACK in lines[j]:
            return j
        if j > i and _text_kind(lines[j]) is not None:
            return None  # another error
    return None


def _trim_blank_tail(lines: Sequence[str]) -> tuple[str, ...]:
    end = len(lines)
    while end > 1 and not lines[end - 1].strip():
        end -= 1
    return tuple(lines[:end])


def scan(lines: Sequence[str], first_line_no: int = 1) -> list[LogFinding]:
    """Every error in ``lines`` (one log's lines, in order), each with the lines it spans."""
    findings: list[LogFinding] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        event = _json_event(line)
        if event is not None:  # judged by its level, its exception, a traceback in a field
            json_lines = _json_error(line, event)
            if json_lines is not None:
                findings.append(LogFinding(first_line_no + i, "structlog", json_lines))
            i += 1
            continue
        kind = _text_kind(line)
        if kind is None:
            i += 1
            continue
        start = i
        header = _own_traceback(lines, i)
        end = i + 1 if header is None else _traceback_end(lines, header)
        findings.append(LogFinding(first_line_no + start, kind, _trim_blank_tail(lines[start:end])))
        i = end
    return findings


def judge(
    findings: Iterable[LogFinding], process: str, expectations: Iterable[LogExpectation]
) -> tuple[list[LogFinding], set[LogExpectation]]:
    """Split ``findings`` of one ``process`` kind: the ones no expectation allows, and the
    expectations that allowed at least one."""
    expected = list(expectations)
    unexpected: list[LogFinding] = []
    used: set[LogExpectation] = set()
    for finding in findings:
        allowing = [e for e in expected if e.allows(finding, process)]
        if allowing:
            used.update(allowing)
        else:
            unexpected.append(finding)
    return unexpected, used


def describe(finding: LogFinding, *, max_lines: int = 40) -> str:
    """A finding for a failure message: its line number, kind and lines (long tracebacks keep
    their head and their end, where the exception is)."""
    lines = list(finding.lines)
    if len(lines) > max_lines:
        head = max_lines // 4
        skipped = len(lines) - max_lines
        lines = [*lines[:head], f"... ({skipped} lines) ...", *lines[-(max_lines - head) :]]
    body = "\n".join(f"    {line}" for line in lines)
    return f"  line {finding.line_no} ({finding.kind}):\n{body}"
