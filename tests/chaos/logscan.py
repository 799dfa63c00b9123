"""The processes' logs are evidence: find every unhandled exception or traceback they logged.

One function, ``tracebacks``, so that a shared check in ``tests/support/`` can replace it. It
finds Python's ``Traceback (most recent call last):`` blocks (uvicorn, arq, the standard
library's logging) and structlog JSON lines that carry an ``exception`` field (our own
``log.exception``), and reports each with its slot, its line and the exception's last line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson

TRACEBACK = "Traceback (most recent call last):"


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


def _block_end(lines: list[str], start: int) -> str:
    """The exception line that closes a traceback block (the first unindented line after it)."""
    for line in lines[start + 1 : start + 400]:
        if line and not line.startswith((" ", "\t", TRACEBACK)):
            return line.strip()[:200]
    return "(traceback without an exception line)"


def tracebacks(logs: dict[str, Path]) -> list[Finding]:
    findings: list[Finding] = []
    for name, path in sorted(logs.items()):
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for n, line in enumerate(lines):
            summary = _json_exception(line)
            if summary is not None:
                findings.append(Finding(name, n + 1, summary[:200]))
            elif TRACEBACK in line and not line.startswith("{"):
                findings.append(Finding(name, n + 1, _block_end(lines, n)))
    return findings
