"""Scrub secrets from every log line, whatever code wrote it: defence in depth.

No module logs a key on purpose; this catches the ones that slip in by accident — an
exception's text, a header dict, a URL with ``?key=``. Values under a secret-sounding name are
replaced whole; anywhere else, strings that look like a gateway, OpenAI or Google key, or a
bearer token, are masked.
"""

from __future__ import annotations

import logging
import re
from collections.abc import MutableMapping
from typing import Any

MASK = "[redacted]"
SECRET_NAMES = frozenset(
    {
        "authorization",
        "api_key",
        "apikey",
        "x-api-key",
        "x-goog-api-key",
        "x-anygate-api-key",
        "x-anygate-provider-key",
        "key",
        "token",
        "secret",
        "password",
        "encryption_key",
        "provider_key",
        "client_key",
        "cookie",
        "set-cookie",
    }
)
_PATTERNS = re.compile(
    r"ag-[A-Za-z0-9_-]{20,}"  # our own keys
    r"|sk-[A-Za-z0-9_*-]{12,}"  # OpenAI-style keys, and the masked ones providers echo
    r"|AIza[0-9A-Za-z_-]{30,}"  # Google API keys
    r"|(?i:bearer)\s+[^\s\"',]+"  # any bearer token
    r"|(?<=[?&]key=)[^&\s\"']+"  # Google's query-string key
)


def scrub(text: str) -> str:
    # Each of _PATTERNS' alternatives needs one of these literals (compared lower-cased, so a
    # superset): text holding none cannot match. Most logged values (ids, names, numbers as
    # text) hold none, and these checks cost a fraction of the regex scan, which ran on every
    # field of every log line.
    low = text.lower()
    if "ag-" in low or "sk-" in low or "aiza" in low or "bearer" in low or "key=" in low:
        return _PATTERNS.sub(MASK, text)
    return text


def _clean(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if depth > 4:
        return value
    if isinstance(value, dict):
        return {
            k: MASK if isinstance(k, str) and k.lower() in SECRET_NAMES else _clean(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_clean(v, depth + 1) for v in value]
    return value


def redact_event(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: run last before rendering (after exceptions are formatted)."""
    for name, value in list(event.items()):
        if name.lower() in SECRET_NAMES:
            event[name] = MASK
        else:
            event[name] = _clean(value)
    return event


class RedactingFilter(logging.Filter):
    """The same for the standard library's records (uvicorn, arq, aiohttp)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True
