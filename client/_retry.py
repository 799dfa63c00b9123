"""When to try a request again, and after how long: pure decisions, shared by the synchronous and
the asynchronous client (which only sleep and send).

What is retried (docs/client.md#retries):

- a 429 or 503, for every request: the gateway refused it before acting on it, and says when to
  come back in ``Retry-After`` (docs/api.md#conventions). A ``Retry-After`` longer than
  ``max_retry_after`` (a spent daily budget says "tomorrow") is not waited out: the error is
  raised at once, carrying ``retry_after``;
- a connection that could not be made, for every request (nothing was sent);
- any other transport failure (a read error, a dropped or timed-out connection) only for an
  idempotent request: a GET, a cancel, or a submit with an ``Idempotency-Key``, which the
  gateway answers with the first job however often it is sent.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from dataclasses import dataclass, field

import httpx

RETRY_STATUSES = frozenset({429, 503})
CONNECT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds from now: delay-seconds (a decimal number is accepted too)
    or an HTTP-date; None when absent or unreadable. Never negative."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is GMT; a zone-less one is read so
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``max_retries``: tries after the first. Without a usable ``Retry-After`` the n-th retry
    waits ``base_delay * 2**n`` (at most ``max_delay``), half of it fixed and half random
    (spreading clients that failed together)."""

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 30.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries: must be 0 or more")

    def backoff(self, retry: int) -> float:
        """The pause before retry number ``retry`` (0 for the first)."""
        full = min(self.max_delay, self.base_delay * 2.0**retry)
        return full / 2 + self.rng.uniform(0, full / 2)

    def after_status(self, retry: int, status: int, retry_after: float | None) -> float | None:
        """The pause before retrying an answer with ``status``; None: do not retry."""
        if status not in RETRY_STATUSES or retry >= self.max_retries:
            return None
        if retry_after is None:
            return self.backoff(retry)
        if retry_after > self.max_retry_after:
            return None
        return retry_after

    def after_error(
        self, retry: int, exc: httpx.TransportError, *, idempotent: bool
    ) -> float | None:
        """The pause before retrying a request that failed with ``exc``; None: do not retry."""
        if retry >= self.max_retries:
            return None
        if isinstance(exc, CONNECT_ERRORS) or idempotent:
            return self.backoff(retry)
        return None
