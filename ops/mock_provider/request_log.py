"""Bounded record of provider requests, so tests can assert what the gateway sent and when.

Only method, path and the JSON body are kept: API keys travel in headers or the query string,
and neither is recorded.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

_PREVIEW_CHARS = 2_000


@dataclass(slots=True)
class RequestRecord:
    id: str
    method: str
    path: str
    started_at: float
    provider: str | None = None
    model: str | None = None
    stream: bool = False
    body: Any = None
    fault: str | None = None
    status: int | None = None
    finished_at: float | None = None
    aborted: bool = False
    aborted_at: float | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def body_for_log(parsed: Any, raw: bytes) -> Any:
    """The parsed JSON when there was some, else a bounded text preview of what arrived."""
    if parsed is not None or not raw:
        return parsed
    return raw[:_PREVIEW_CHARS].decode("utf-8", errors="replace")


class RequestLog:
    """A ring buffer: the newest `size` records survive, older ones fall off silently."""

    def __init__(self, size: int) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=size)
        self._ids = itertools.count(1)
        self._enabled = size > 0

    def start(self, method: str, path: str, started_at: float) -> RequestRecord:
        record = RequestRecord(
            id=f"req_{next(self._ids)}", method=method, path=path, started_at=started_at
        )
        if self._enabled:
            self._records.append(record)
        return record

    def entries(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Oldest first; `limit` keeps only the newest entries."""
        records = list(self._records)
        if limit is not None:
            records = records[-limit:] if limit > 0 else []
        return [record.as_json() for record in records]

    def clear(self) -> None:
        self._records.clear()
