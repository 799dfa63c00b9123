"""Bounded record of provider requests, so tests can assert what the gateway sent and when.

Only method, path and the JSON body are kept: API keys travel in headers or the query string,
and neither is recorded; a short hash tells keys apart. Each entry also says when the request
arrived whole, what it answered and what it was charged, so rate limits can be audited later.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

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
    arrived_at: float | None = None
    """When the whole request had arrived: the time the rate limits counted it at."""
    query: str = ""
    """The query string, without a ``key`` parameter (a Gemini API key)."""
    auth: str | None = None
    """Which credential was presented: ``bearer``, ``api-key``, ``x-goog-api-key`` or ``key``
    (the query parameter); never the credential (``key_fingerprint`` tells keys apart)."""
    key_fingerprint: str | None = None
    tokens: int = 0
    """What the request counts against a token limit: the usage its answer reports; 0 when it
    was refused, answered with an error or fault, or is not metered (model lists, countTokens)."""
    rate_limited: str | None = None
    """Which limit refused it: `requests`, `tokens` or `too_large`."""
    batch: str | None = None
    """The provider batch this line ran in; None for live requests. Batch lines are metered
    when they run (when a poll finds them due), not when the batch is created."""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def key_fingerprint(key: str | None) -> str | None:
    """Eight hex digits of the key's SHA-256: enough to tell test keys apart, useless to a thief."""
    return None if key is None else hashlib.sha256(key.encode()).hexdigest()[:8]


def query_for_log(query_string: bytes) -> str:
    """The query as sent, less any ``key`` parameter."""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    return urlencode([(name, value) for name, value in pairs if name != "key"])


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
