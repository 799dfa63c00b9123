"""The shared HTTP client and the one place upstream failures are classified.

Classification follows SPEC §2: 429 → rate limited (honour Retry-After, refund the attempt);
408/409/5xx, timeouts and dropped connections → transient (backoff); any other 4xx → rejected,
failed at once with the provider's own message.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx
import orjson

from anygate.broker.errors import (
    UpstreamError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamTransientError,
)
from anygate.config import ProviderConfig

TRANSIENT_STATUSES = frozenset({408, 409, 425, 500, 502, 503, 504, 520, 522, 524, 529})


def create_http_client(provider: ProviderConfig, concurrency: int) -> httpx.AsyncClient:
    """One pooled client per provider, sized to the worker's concurrency so no call waits."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(provider.timeout_s, connect=provider.connect_timeout_s),
        limits=httpx.Limits(
            max_connections=concurrency + 8, max_keepalive_connections=concurrency + 8
        ),
        headers={"user-agent": "anygate"},
    )


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parsed = email.utils.parsedate_to_datetime(value) if value else None
    if parsed is None:
        return None
    return max(0.0, parsed.timestamp() - time.time())


def provider_message(body: bytes) -> tuple[str | None, str | None]:
    """The provider's own error message and code, if its body has the usual shape."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        msg = err.get("message")
        code = err.get("code") or err.get("status")
        return (str(msg) if msg is not None else None), (str(code) if code is not None else None)
    return None, None


def error_for_status(status: int, body: bytes, headers: httpx.Headers) -> UpstreamError:
    message, code = provider_message(body)
    text = message or f"upstream answered HTTP {status}"
    if status == 429:
        retry_after = parse_retry_after(headers.get("retry-after"))
        return UpstreamRateLimitedError(
            text, upstream_status=status, retry_after=retry_after, code=code
        )
    if status in TRANSIENT_STATUSES or status >= 500:
        return UpstreamTransientError(text, upstream_status=status, code=code)
    return UpstreamRejectedError(text, upstream_status=status, code=code)


def error_for_exception(exc: httpx.HTTPError) -> UpstreamTransientError:
    """Transport failures: never include the request (its headers carry the key)."""
    kind = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTransientError(f"upstream timed out ({kind})", code="upstream_timeout")
    return UpstreamTransientError(
        f"upstream connection failed ({kind})", code="upstream_connection_error"
    )
