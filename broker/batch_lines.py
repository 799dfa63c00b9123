"""Batch files as lines: cutting an upload into line-aligned chunks, and checking each line.

Pure logic, no I/O: ``file_store`` feeds it the bytes of an upload as they arrive and stores
what it returns. Lines are separated by ``\\n``; a ``\\r`` before it (CRLF) is part of the line
ending, never of the line. Line numbers are physical (1-based, blank lines counted), so a number
in an error message is the one an editor shows.

A batch line has two kinds of problems (OpenAI's behaviour,
docs/api.md#bad-input-and-request-limits):

- *unidentifiable*: not JSON, not an object, no usable ``custom_id``, or a ``custom_id`` used
  before. Such a line cannot be given a result of its own, so the whole upload is refused.
- *identifiable but invalid* (wrong ``method``, ``url`` or ``body``): the upload is accepted
  and the line, named by its ``custom_id``, goes straight to the batch's error file; the good
  lines are never lost because of it.

A refusal lists every bad line of both kinds that the same pass found, in line order (the
first ``MAX_LISTED``, then a count of the rest), so one round of fixes is enough: a file
refused for one unparseable line must not turn out, once that is fixed, to have had more
problems that were already known.

Whether ``body.model`` names a configured alias is not checked here: aliases can change
before the batch runs, and the batch reports unknown models per line.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from anygate.broker.errors import InvalidRequestError

BATCH_URLS: tuple[str, ...] = ("/v1/chat/completions", "/v1/embeddings")
MAX_CUSTOM_ID = 512
MAX_LISTED = 100
"""Problems named one by one in a refusal; the rest are counted (``and K more``)."""
_SHOWN_ID = 64
"""Characters of a ``custom_id`` quoted in a message."""
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class BadLine:
    """An identifiable line the batch cannot run: it becomes a line of the error file."""

    line: int
    custom_id: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "custom_id": self.custom_id, "reason": self.reason}

    def __str__(self) -> str:
        return f"line {self.line} (custom_id {_quote(self.custom_id)}): {self.reason}"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BadLine:
        return cls(int(data["line"]), str(data["custom_id"]), str(data["reason"]))


@dataclass(frozen=True, slots=True)
class Unidentifiable:
    """A line no result can be given to (no usable ``custom_id``): it refuses the upload."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class LineChunker:
    """Cuts a byte stream into chunks of whole lines, each about ``target`` bytes.

    A chunk ends just after a ``\\n`` at or before ``target`` bytes; a line longer than
    ``target`` is a chunk of its own. Only the last chunk (``finish``) may lack a final
    ``\\n``. Concatenated, the chunks are exactly the bytes fed in."""

    def __init__(self, target: int) -> None:
        if target < 1:
            raise ValueError("target must be positive")
        self._target = target
        self._buf = bytearray()
        self._searched = 0
        """Bytes of ``_buf`` known to hold no ``\\n`` (a long line still arriving): searching
        them again for every new piece would be quadratic."""

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return the chunks that are now complete (often none)."""
        self._buf += data
        out: list[bytes] = []
        buf = self._buf
        while len(buf) >= self._target:
            cut = buf.rfind(b"\n", 0, self._target) if self._searched == 0 else -1
            if cut < 0:
                cut = buf.find(b"\n", max(self._target, self._searched))
                if cut < 0:
                    self._searched = len(buf)
                    break
            out.append(bytes(buf[: cut + 1]))
            del buf[: cut + 1]
            self._searched = 0
        return out

    def finish(self) -> bytes:
        """The rest (whole lines, the last one possibly without ``\\n``); empty if none."""
        rest = bytes(self._buf)
        self._buf.clear()
        self._searched = 0
        return rest

    @property
    def pending(self) -> int:
        return len(self._buf)


def chunk_lines(chunk: bytes, first: int) -> Iterator[tuple[int, bytes]]:
    """The lines of a line-aligned chunk as (number, content without line ending), numbered
    from ``first``; blank lines included."""
    pieces = chunk.split(b"\n")
    if chunk.endswith(b"\n"):
        pieces.pop()
    for offset, piece in enumerate(pieces):
        yield first + offset, piece[:-1] if piece.endswith(b"\r") else piece


def line_count(chunk: bytes) -> int:
    """Physical lines in a line-aligned chunk (a final line without ``\\n`` counts)."""
    if not chunk:
        return 0
    return chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)


def nonblank_lines(chunk: bytes) -> int:
    return sum(not is_blank(line) for _, line in chunk_lines(chunk, 2))


def is_blank(line: bytes) -> bool:
    return not line.strip()


def strip_bom(line: bytes, number: int) -> bytes:
    """Editors on Windows start UTF-8 files with a byte-order mark, which is not JSON."""
    return line[len(_BOM) :] if number == 1 and line.startswith(_BOM) else line


@dataclass
class BatchLineChecker:
    """Checks a batch file line by line, fed chunk by chunk in order (see ``LineChunker``).

    Holds what the whole file needs: the next line number, the ``custom_id``s seen (for
    duplicates), the unidentifiable lines (the first ``MAX_LISTED``, and how many) and the
    identifiable bad lines (all: the error file needs them). ``max_lines`` bounds the request
    (non-blank) lines: one more raises at once, so an upload that is too long stops there."""

    max_lines: int
    requests: int = 0
    next_line: int = 1
    fatal: list[Unidentifiable] = field(default_factory=list)
    fatal_count: int = 0
    bad: list[BadLine] = field(default_factory=list)
    _seen: dict[str, int] = field(default_factory=dict)

    def check_chunk(self, chunk: bytes) -> None:
        for number, line in chunk_lines(chunk, self.next_line):
            self.check_line(number, line)
        self.next_line += line_count(chunk)

    def check_line(self, number: int, line: bytes) -> None:
        line = strip_bom(line, number)
        if is_blank(line):
            return
        self.requests += 1
        if self.requests > self.max_lines:
            raise InvalidRequestError(
                f"file: a batch file may hold at most {self.max_lines} requests; line "
                f"{number} is request {self.requests}",
                param="file",
                code="too_many_lines",
            )
        custom_id, problem = self._identify(number, line)
        if custom_id is None:
            self.fatal_count += 1
            if len(self.fatal) < MAX_LISTED:
                self.fatal.append(Unidentifiable(number, problem or ""))
        elif problem is not None:
            self.bad.append(BadLine(number, custom_id, problem))

    def _identify(self, number: int, line: bytes) -> tuple[str | None, str | None]:
        """(custom_id, problem): no custom_id means the line is unidentifiable."""
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            return None, f"not valid JSON ({exc.msg})"
        if not isinstance(obj, dict):
            return None, f"expected a JSON object, got {_json_kind(obj)}"
        if "custom_id" not in obj:
            return None, "custom_id: missing"
        custom_id = obj["custom_id"]
        if not isinstance(custom_id, str):
            return None, f"custom_id: expected a string, got {_json_kind(custom_id)}"
        if not custom_id:
            return None, "custom_id: must not be empty"
        if len(custom_id) > MAX_CUSTOM_ID:
            return None, f"custom_id: longer than {MAX_CUSTOM_ID} characters"
        first = self._seen.get(custom_id)
        if first is not None:
            return None, f"custom_id {_quote(custom_id)} was already used on line {first}"
        self._seen[custom_id] = number
        return custom_id, request_problem(obj)

    def refusal(self) -> InvalidRequestError | None:
        """The 400 for a file with unidentifiable lines, or for one without any request.

        It names every bad line found, the invalid-but-identifiable ones too (with their
        ``custom_id``): both lists are in line order, so merging them and keeping the first
        ``MAX_LISTED`` gives the first bad lines of the file, whatever their kind."""
        if self.fatal_count:
            kinds: tuple[list[Unidentifiable | BadLine], ...] = ([*self.fatal], [*self.bad])
            merged = heapq.merge(*kinds, key=lambda problem: problem.line)
            listed = [str(problem) for problem in itertools.islice(merged, MAX_LISTED)]
            more = self.fatal_count + len(self.bad) - len(listed)
            tail = f"\nand {more} more" if more else ""
            invalid = (
                f"; {len(self.bad)} more {_lines(len(self.bad))} (named by custom_id) "
                f"{'is a request' if len(self.bad) == 1 else 'are requests'} that cannot run"
                if self.bad
                else ""
            )
            return InvalidRequestError(
                f"file: {self.fatal_count} {_lines(self.fatal_count)} of the batch file "
                f"cannot be identified (each needs to be a JSON object with a unique string "
                f"custom_id){invalid}; nothing was stored:\n" + "\n".join(listed) + tail,
                param="file",
                code="invalid_batch_file",
            )
        if self.requests == 0:
            return InvalidRequestError(
                "file: the batch file holds no requests (one JSON object per line expected)",
                param="file",
                code="invalid_batch_file",
            )
        return None


def request_problem(obj: dict[str, Any]) -> str | None:
    """What makes an identifiable line unrunnable, or None if it is a request we can run."""
    method = obj.get("method")
    if method != "POST":
        return f"method: expected 'POST', got {_shown(method)}"
    url = obj.get("url")
    if url not in BATCH_URLS:
        return f"url: expected one of {', '.join(BATCH_URLS)}, got {_shown(url)}"
    body = obj.get("body")
    if not isinstance(body, dict):
        return f"body: expected a JSON object, got {_json_kind(body)}"
    if not isinstance(body.get("model"), str):
        return f"body.model: expected a string, got {_json_kind(body.get('model'))}"
    return None


def _lines(count: int) -> str:
    return "line" if count == 1 else "lines"


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _quote(text: str) -> str:
    return repr(text if len(text) <= _SHOWN_ID else text[:_SHOWN_ID] + "…")


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return _quote(value)
    return "nothing" if value is None else _json_kind(value)
