"""The request as the provider handlers see it and the answer they plan, before any I/O.

Handlers return an `Exchange`; the app alone decides timing (latency, chunk delays) and acts out
faults on it, so every provider gets the same fault behaviour from one implementation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import orjson

Headers = list[tuple[bytes, bytes]]


class InvalidJsonError(Exception):
    """The body is not JSON; each provider answers with its own 400."""


@dataclass(slots=True)
class Incoming:
    """What handlers need from an HTTP request; header names are lower-case."""

    method: str
    path: str
    query_string: bytes
    authorization: bytes | None
    goog_api_key: bytes | None
    raw_body: bytes
    request_id: str
    headers: Headers | None = None
    """All request headers, for the few endpoints that read more than the credentials."""
    azure_api_key: bytes | None = None
    """Azure OpenAI's ``api-key`` header."""
    _parsed: Any = None
    _parsed_done: bool = False
    _query: dict[str, list[str]] | None = None

    def json(self) -> Any:
        """The body, parsed once; InvalidJsonError lets each provider answer in its own shape."""
        if not self._parsed_done:
            self._parsed_done = True
            try:
                self._parsed = orjson.loads(self.raw_body) if self.raw_body else None
            except orjson.JSONDecodeError:
                raise InvalidJsonError from None
        return self._parsed

    def parsed_or_none(self) -> Any:
        try:
            return self.json()
        except InvalidJsonError:
            return None

    def header(self, name: bytes) -> bytes | None:
        """A header's value by lower-case name (the last one if repeated)."""
        found = None
        for key, value in self.headers or ():
            if key == name:
                found = value
        return found

    def query(self, name: str) -> str | None:
        if self._query is None:
            self._query = parse_qs(self.query_string.decode("latin-1"))
        values = self._query.get(name)
        return values[-1] if values else None


@dataclass(slots=True)
class Exchange:
    """A planned answer: a unary body, or SSE/array frames to stream.

    `plannable` is False for answers that must go out as they are (auth failures, bad requests,
    injected faults): no latency and no further fault injection apply to them. `cost` is the
    usage the answer reports, known before it is sent so the rate limits can refuse it unbilled;
    None for endpoints that do not count against the limits.
    """

    status: int
    headers: Headers
    body: bytes = b""
    frames: list[bytes] | None = None
    frame_end: bytes = b""
    plannable: bool = True
    cost: int | None = None

    def malformed_frame(self, index: int) -> bytes:
        """The first half of a real frame, re-terminated: framing intact, payload not JSON."""
        assert self.frames is not None
        frame = self.frames[min(index, len(self.frames) - 1)]
        payload = frame[: len(frame) - len(self.frame_end)] if self.frame_end else frame
        return payload[: max(len(payload) // 2, 7)] + self.frame_end


def json_headers(content_type: bytes, request_id: str, extra: Headers | None = None) -> Headers:
    headers: Headers = [(b"content-type", content_type), (b"x-request-id", request_id.encode())]
    if extra:
        headers.extend(extra)
    return headers


def sse_headers(request_id: str) -> Headers:
    return [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-cache"),
        (b"x-request-id", request_id.encode()),
    ]


def sse_frames(chunks: list[dict[str, Any]], end: bytes) -> list[bytes]:
    return [b"data: " + orjson.dumps(chunk) + end for chunk in chunks]


def array_frames(chunks: list[dict[str, Any]]) -> list[bytes]:
    """Gemini's stream without `alt=sse`: one JSON array delivered element by element."""
    frames = [
        (b"[" if index == 0 else b",\r\n") + orjson.dumps(chunk)
        for index, chunk in enumerate(chunks)
    ]
    frames.append(b"]")
    return frames


def json_exchange(
    content_type: bytes,
    request_id: str,
    status: int,
    body: Any,
    extra_headers: Headers | None = None,
    *,
    cost: int | None = None,
) -> Exchange:
    """A unary JSON answer; anything but a 200 goes out as it is (not plannable)."""
    return Exchange(
        status=status,
        headers=json_headers(content_type, request_id, extra_headers),
        body=orjson.dumps(body),
        plannable=status == 200,
        cost=cost,
    )
