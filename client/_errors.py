"""Errors the client raises; the gateway's OpenAI-shaped error body is kept whole."""

from __future__ import annotations

from typing import Any


class AnygateClientError(Exception):
    """The gateway answered with an error status."""

    def __init__(self, status: int, body: dict[str, Any], request_id: str | None) -> None:
        raw = body.get("error")
        error: dict[str, Any] = raw if isinstance(raw, dict) else {}
        self.status = status
        self.body = body
        self.request_id = request_id
        self.type: str | None = error.get("type")
        self.code: str | None = error.get("code")
        self.param: str | None = error.get("param")
        self.message: str = error.get("message") or f"HTTP {status}"
        super().__init__(f"{status} {self.code or self.type}: {self.message}")
