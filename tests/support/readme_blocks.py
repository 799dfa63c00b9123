"""The README's fenced code blocks, each with its language and the name a marker gives it.

A block is named by an HTML comment on the line before it (blank lines may sit between):
``<!-- example: try-it -->``, which GitHub does not render. The README test
(``tests/integration/test_readme_examples.py``) runs or checks every block by that name, so a
block nobody runs is an error here, not a silent gap. Pure text work, no I/O, so the rules have
fast unit tests (``tests/unit/test_readme_blocks.py``).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Collection, Sequence
from dataclasses import dataclass

__all__ = ["Block", "ReadmeError", "coverage_problems", "parse_blocks", "shell_commands"]

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_MARKER = re.compile(r"^<!--\s*example:\s*(?P<name>[A-Za-z0-9][\w.-]*)\s*-->\s*$")
_ANY_MARKER = re.compile(r"^<!--\s*example\b")


class ReadmeError(ValueError):
    """The README's structure is broken (an unclosed fence, a stray or repeated marker)."""


@dataclass(frozen=True)
class Block:
    """One fenced block: ``line`` is the 1-based line of its opening fence."""

    name: str | None
    lang: str
    text: str
    line: int


def parse_blocks(markdown: str) -> list[Block]:
    """Every fenced block of ``markdown`` in order. A marker must be followed by a block; a
    name may be used once; a fence must be closed."""
    blocks: list[Block] = []
    seen: dict[str, int] = {}
    pending: tuple[str, int] | None = None
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        number = i + 1
        marker = _MARKER.match(line.strip())
        opening = _FENCE.match(line)
        if marker:
            if pending is not None:
                raise ReadmeError(f"line {pending[1]}: marker {pending[0]!r} names no block")
            pending = (marker.group("name"), number)
        elif _ANY_MARKER.match(line.strip()):
            raise ReadmeError(f"line {number}: malformed marker (<!-- example: name -->)")
        elif opening:
            fence = opening.group("fence")
            body, i = _body(lines, i + 1, fence, number)
            name = pending[0] if pending else None
            if name is not None:
                if name in seen:
                    raise ReadmeError(f"line {number}: {name!r} already names line {seen[name]}")
                seen[name] = number
            lang = opening.group("info").strip().split(" ", 1)[0].lower()
            blocks.append(Block(name, lang, body, number))
            pending = None
        elif line.strip() and pending is not None:
            raise ReadmeError(f"line {pending[1]}: marker {pending[0]!r} names no block")
        i += 1
    if pending is not None:
        raise ReadmeError(f"line {pending[1]}: marker {pending[0]!r} names no block")
    return blocks


def _body(lines: Sequence[str], start: int, fence: str, opened: int) -> tuple[str, int]:
    """The text up to the closing fence (same character, at least as long), and its index."""
    for j in range(start, len(lines)):
        stripped = lines[j].strip()
        if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
            return "".join(f"{text}\n" for text in lines[start:j]), j
    raise ReadmeError(f"line {opened}: the fence is never closed")


def coverage_problems(blocks: Sequence[Block], known: Collection[str]) -> list[str]:
    """What keeps every block from being run or checked: a block without a marker, a name
    nothing knows about, and a known name no block carries any more (a stale table row)."""
    problems = [
        f"line {b.line}: a {b.lang or 'plain'} block without <!-- example: name -->"
        for b in blocks
        if b.name is None
    ]
    names = [b.name for b in blocks if b.name is not None]
    problems += [
        f"line {b.line}: block {b.name!r} is neither run nor classified by the README test"
        for b in blocks
        if b.name is not None and b.name not in known
    ]
    problems += [
        f"{name!r} is in the README test but names no block"
        for name in sorted(set(known) - set(names))
    ]
    return problems


def shell_commands(text: str) -> list[list[str]]:
    """A shell block's commands as argument lists: ``\\`` continuations joined, comments and
    blank lines dropped (for blocks the test checks command by command rather than runs)."""
    commands: list[list[str]] = []
    logical = ""
    for raw in text.splitlines():
        if raw.rstrip().endswith("\\"):
            logical += raw.rstrip()[:-1] + " "
            continue
        logical += raw
        words = shlex.split(logical, comments=True)
        if words:
            commands.append(words)
        logical = ""
    if logical.strip():
        raise ReadmeError(f"a continuation line ends the block: {logical.strip()!r}")
    return commands
