"""The one place upstream failures are classified (the client itself: ``upstream.py``).

Classification follows docs/queue-semantics.md#provider-rate-limits: 429 → rate limited (honour
Retry-After, refund the attempt); 408/409/5xx, timeouts and dropped connections → transient
(backoff); any other 4xx → rejected, failed at once with the provider's own message.

Bodies come in two shapes: OpenAI's ``{"error": {"message", "type", "code"}}`` and Google's
``{"error": {"code": 429, "message", "status": "RESOURCE_EXHAUSTED", "details": [...]}}``
(sometimes wrapped in a one-element array by ``streamGenerateContent``). Google's numeric
``code`` only repeats the HTTP status, so its ``status`` name is the code reported; and Google
says when to retry in a ``google.rpc.RetryInfo`` detail rather than a Retry-After header.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from anygate.broker.errors import (
    UpstreamError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamTransientError,
)
from anygate.core.redaction import scrub

TRANSIENT_STATUSES = frozenset({408, 409, 425, 500, 502, 503, 504, 520, 522, 524, 529})


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


_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


@dataclass(frozen=True, slots=True)
class ProviderError:
    """What an error body says, reduced to the fields that are safe to pass on."""

    message: str | None = None
    code: str | None = None
    retry_after: float | None = None


def parse_duration(value: Any) -> float | None:
    """A ``google.protobuf.Duration`` in its JSON form (``"2s"``, ``"0.5s"``)."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        return float(match.group(1)) if match else None
    if isinstance(value, Mapping):  # the proto's field form, seen from some gateways
        seconds, nanos = value.get("seconds", 0), value.get("nanos", 0)
        if isinstance(seconds, int | float | str) and isinstance(nanos, int | float):
            try:
                return float(seconds) + float(nanos) / 1e9
            except ValueError:
                return None
    return None


def _retry_delay(details: Any) -> float | None:
    if not isinstance(details, list):
        return None
    for detail in details:
        if isinstance(detail, Mapping) and detail.get("@type") == _RETRY_INFO:
            return parse_duration(detail.get("retryDelay"))
    return None


def parse_provider_error(body: bytes) -> ProviderError:
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ProviderError()
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        return ProviderError()
    msg = err.get("message")
    code = err.get("code")
    status = err.get("status")
    if (code is None or isinstance(code, int)) and isinstance(status, str) and status:
        code = status
    return ProviderError(
        message=str(msg) if msg is not None else None,
        code=str(code) if code is not None else None,
        retry_after=_retry_delay(err.get("details")),
    )


def _retry_after_ms(value: str | None) -> float | None:
    """Azure OpenAI's ``retry-after-ms``: the wait in milliseconds, finer than Retry-After."""
    try:
        return max(0.0, float(value)) / 1000 if value else None
    except ValueError:
        return None


def _later(*delays: float | None) -> float | None:
    """When header and body both say how long to wait, the longer wait is the safe one."""
    known = [delay for delay in delays if delay is not None]
    return max(known) if known else None


def error_for_status(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
    parsed = parse_provider_error(body)
    text = scrub(parsed.message or f"upstream answered HTTP {status}")
    code = parsed.code
    if status in {401, 403}:
        # Providers echo part of the key they refused ("sk-proj-****abcd"): a client must not
        # learn anything about the gateway's credentials, so the message is ours.
        text = f"the provider refused the credentials it was called with (HTTP {status})"
    if status == 429:
        retry_after = _later(
            parse_retry_after(headers.get("retry-after")),
            _retry_after_ms(headers.get("retry-after-ms")),
            parsed.retry_after,
        )
        return UpstreamRateLimitedError(
            text, upstream_status=status, retry_after=retry_after, code=code
        )
    if status in TRANSIENT_STATUSES or status >= 500:
        return UpstreamTransientError(text, upstream_status=status, code=code)
    return UpstreamRejectedError(text, upstream_status=status, code=code)


def json_object(raw: bytes | str, *, what: str, code: str) -> dict[str, Any]:
    """An upstream answer or chunk that must be a JSON object; anything else is transient (a
    garbled answer is the upstream's fault, worth another try)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamTransientError(
            f"upstream sent a {what} that is not JSON", code=code
        ) from None
    if not isinstance(value, dict):
        raise UpstreamTransientError(f"upstream sent an unexpected {what}", code=code)
    return value
