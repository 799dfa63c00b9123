"""Refuse oversized request heads before any handler runs
(docs/api.md#bad-input-and-request-limits): too many or too large headers (431) and too long a URL
(414).

uvicorn's httptools parser sets no limit on header count or size, and only refuses URLs over
64 KiB (with a bare text 400): without this, every header is parsed, copied into ``Headers`` and
scanned by each middleware and handler on every request. This middleware is pure ASGI, never
touches the body (a stream stays unbuffered) and costs one pass over ``scope["headers"]``, which
the server has already built; it sits inside ``RequestIdMiddleware`` so refusals carry
``x-request-id``. Refusals answer in OpenAI's error shape, or Google's on the Gemini surface
(docs/api.md#gemini-compatible-surface), as the handlers would.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from anygate.config import ServerConfig


class RequestLimitsMiddleware:
    """431 ``headers_too_large`` over ``max_header_count``/``max_header_bytes``; 414
    ``url_too_long`` over ``max_url_bytes`` (path and query string, as sent)."""

    def __init__(self, app: ASGIApp, server: ServerConfig) -> None:
        self.app = app
        self.max_count = server.max_header_count
        self.max_bytes = server.max_header_bytes
        self.max_url = server.max_url_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if len(headers) > self.max_count:
            await _refuse(
                scope,
                send,
                431,
                "headers_too_large",
                f"too many request headers: at most {self.max_count} are accepted",
            )
            return
        size = 0
        for name, value in headers:
            size += len(name) + len(value)
        if size > self.max_bytes:
            await _refuse(
                scope,
                send,
                431,
                "headers_too_large",
                f"request headers are too large: at most {self.max_bytes} bytes are accepted",
            )
            return
        path: bytes = scope.get("raw_path") or scope["path"].encode()
        query: bytes = scope.get("query_string", b"")
        if len(path) + (len(query) + 1 if query else 0) > self.max_url:
            await _refuse(
                scope,
                send,
                414,
                "url_too_long",
                f"the request URL is too long: at most {self.max_url} bytes are accepted",
            )
            return
        await self.app(scope, receive, send)


def _google_surface(scope: Scope) -> bool:
    """As ``gemini_compat`` routes: everything under ``/v1beta/``; under ``/v1/models`` a POST
    (``models/{model}:{method}``) or a request authenticated the Gemini way."""
    path: str = scope["path"]
    if path.startswith("/v1beta/"):
        return True
    if not path.startswith("/v1/models"):
        return False
    if scope["method"] == "POST" or b"key=" in scope.get("query_string", b""):
        return True
    return any(name == b"x-goog-api-key" for name, _ in scope["headers"])


async def _refuse(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
    """Answer without reading the body; the connection is closed, as the head alone may be
    hostile and the unread body would otherwise still have to be parsed."""
    if _google_surface(scope):
        error: dict[str, object] = {
            "code": status,
            "message": message,
            "status": "INVALID_ARGUMENT",
        }
    else:
        error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    body = orjson.dumps({"error": error})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
