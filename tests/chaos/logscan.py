"""The processes' logs are evidence: find every unhandled exception or traceback they logged.

One function, ``tracebacks``, so that a shared check in ``tests/support/`` can replace it. It
finds Python's ``Traceback (most recent call last):`` blocks (uvicorn, arq, the standard
library's logging) and structlog JSON lines that carry an ``exception`` field (our own
``log.exception``), and reports each with its slot, its line and the exception's last line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import orjson

_IDS = re.compile(r"\b(job|batch|file|dlv)_[A-Za-z0-9_-]+")
_TIMING = re.compile(r"^\d+\.\d+s\s+")
TRACEBACK = "Traceback (most recent call last):"
CHAIN = ("During handling of the above exception", "The above exception was the direct cause")


@dataclass(frozen=True, slots=True)
class Finding:
    log: str
    line: int
    summary: str


def _json_exception(line: str) -> str | None:
    if not line.startswith("{"):
        return None
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(record, dict) or not record.get("exception"):
        return None
    last = str(record["exception"]).strip().splitlines()[-1]
    return f"{record.get('event', '?')}: {last}"


def _block(lines: list[str], start: int, context: str) -> tuple[str, int]:
    """The summary of the plain-text traceback starting at ``start`` (the message logged with
    it, such as asyncio's "Task exception was never retrieved", and the exception it ends
    with; a chain, "During handling of the above exception ...", is one block ending with its
    last exception) and the index of the first line after it."""
    final = exc = ""
    end = len(lines)
    for n in range(start + 1, len(lines)):
        line = lines[n]
        if line.startswith("{"):
            end = n
            break
        if line.startswith(CHAIN):
            final, exc = exc, ""
        elif line.strip() and not line.startswith((" ", "\t", TRACEBACK)):
            if exc:
                end = n
                break
            exc = line.strip()
    last = (exc or final or "(no exception line)")[:160]
    return (f"{context[:70]} -> {last}" if context else last), end


def _context(lines: list[str], n: int) -> str:
    """The plain message logged just before a traceback, ids and timings blanked so that the
    same fault groups together (asyncio's "future: <Task ...>" line is passed over)."""
    for line in reversed(lines[max(0, n - 2) : n]):
        text = line.strip()
        if not text or line.startswith("{"):
            return ""
        if not text.startswith("future: <Task"):
            text = _IDS.sub(r"\1_…", text)
            return _TIMING.sub("", text)
    return ""


def tracebacks(logs: dict[str, Path]) -> list[Finding]:
    findings: list[Finding] = []
    for name, path in sorted(logs.items()):
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        n = 0
        while n < len(lines):
            line = lines[n]
            summary = _json_exception(line)
            if summary is not None:
                findings.append(Finding(name, n + 1, summary[:200]))
            elif line.startswith(TRACEBACK):
                summary, after = _block(lines, n, _context(lines, n))
                findings.append(Finding(name, n + 1, summary))
                n = after
                continue
            n += 1
    return findings
