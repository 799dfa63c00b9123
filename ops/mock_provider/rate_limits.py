"""Provider-side rate limits: an exact sliding log of what each key was charged.

Real providers refuse a key that exceeds its requests or tokens per minute. The mock counts both
over the last `window_s` seconds exactly (a log of admitted requests, not fixed buckets), so a
test can claim "never more than N in any window" and audit the request log with the same
arithmetic: a request charged at `t` counts until `t + window_s`, exclusive.

Pure: the caller passes the clock, so tests drive time by hand. Should the clock step back, a
request is counted at its key's latest charge instead (`Decision.at`), keeping each log in order.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

Refusal = Literal["requests", "tokens", "too_large"]


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Limits per key; `rpm`/`tpm` count over `window_s` (the "minute", shortened by tests)."""

    rpm: int | None = None
    tpm: int | None = None
    window_s: float = 60.0

    @property
    def enabled(self) -> bool:
        return self.rpm is not None or self.tpm is not None


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one request plus what the provider's rate-limit headers report.

    `used_*` is what the window held before this request; `remaining_*` is what it has left
    after it (None for an unlimited dimension). `reset_*_s` is the time until that window is
    empty again. A request refused as `too_large` can never fit: its `retry_after_s` is inf.
    `at` is the time the request was counted at: `now`, unless the clock went backwards.
    """

    admitted: bool
    at: float
    limits: RateLimits
    requested_tokens: int
    used_requests: int
    used_tokens: int
    remaining_requests: int | None
    remaining_tokens: int | None
    reset_requests_s: float
    reset_tokens_s: float
    retry_after_s: float = 0.0
    refused_by: Refusal | None = None


@dataclass(slots=True)
class _Charge:
    at: float
    tokens: int


class _KeyLog:
    """One key's admitted requests, oldest first, with the token total kept alongside."""

    __slots__ = ("charges", "tokens")

    def __init__(self) -> None:
        self.charges: deque[_Charge] = deque()
        self.tokens = 0

    def expire(self, now: float, window_s: float) -> None:
        charges = self.charges
        while charges and charges[0].at + window_s <= now:
            self.tokens -= charges.popleft().tokens

    def wait_for_requests(self, rpm: int, now: float, window_s: float) -> float:
        """Until enough of the oldest requests expire to leave room for one more."""
        excess = len(self.charges) + 1 - rpm
        if excess <= 0:
            return 0.0
        return self.charges[excess - 1].at + window_s - now

    def wait_for_tokens(self, tpm: int, cost: int, now: float, window_s: float) -> float:
        """Until enough of the oldest tokens expire to leave room for `cost` more."""
        excess = self.tokens + cost - tpm
        if excess <= 0:
            return 0.0
        freed = 0
        for charge in self.charges:
            freed += charge.tokens
            if freed >= excess:
                return charge.at + window_s - now
        raise AssertionError("a cost within the limit always fits an empty window")

    def until_empty(self, now: float, window_s: float) -> float:
        return max(0.0, self.charges[-1].at + window_s - now) if self.charges else 0.0


class RateLimiter:
    """Admits or refuses requests per key; a refused request is charged nothing."""

    def __init__(self, limits: RateLimits | None = None) -> None:
        self.limits = limits or RateLimits()
        self._logs: dict[str, _KeyLog] = {}

    def clear(self) -> None:
        self._logs.clear()

    def check(self, key: str, tokens: int, now: float) -> Decision:
        """Charge one request of `tokens` to `key` at `now` if both limits leave room."""
        limits = self.limits
        window = limits.window_s
        log = self._logs.setdefault(key, _KeyLog())
        if log.charges and now < log.charges[-1].at:
            now = log.charges[-1].at
        log.expire(now, window)
        used_requests, used_tokens = len(log.charges), log.tokens
        refused_by: Refusal | None = None
        retry_after = 0.0
        if limits.tpm is not None and tokens > limits.tpm:
            refused_by, retry_after = "too_large", math.inf
        else:
            # A positive wait means the limit is reached: the entry it waits for has not expired.
            wait_requests = wait_tokens = 0.0
            if limits.rpm is not None:
                wait_requests = log.wait_for_requests(limits.rpm, now, window)
            if limits.tpm is not None:
                wait_tokens = log.wait_for_tokens(limits.tpm, tokens, now, window)
            if wait_requests > 0:
                refused_by = "requests"
            elif wait_tokens > 0:
                refused_by = "tokens"
            retry_after = max(wait_requests, wait_tokens)
        admitted = refused_by is None
        if admitted:
            log.charges.append(_Charge(now, tokens))
            log.tokens += tokens
        reset = log.until_empty(now, window)
        return Decision(
            admitted=admitted,
            at=now,
            limits=limits,
            requested_tokens=tokens,
            used_requests=used_requests,
            used_tokens=used_tokens,
            remaining_requests=(
                None if limits.rpm is None else max(0, limits.rpm - len(log.charges))
            ),
            remaining_tokens=None if limits.tpm is None else max(0, limits.tpm - log.tokens),
            reset_requests_s=reset if limits.rpm is not None else 0.0,
            reset_tokens_s=reset if limits.tpm is not None else 0.0,
            retry_after_s=retry_after,
            refused_by=refused_by,
        )

    def settle(self, key: str, at: float, tokens: int) -> None:
        """Change what an admitted request costs once its answer is known (a fault bills none)."""
        log = self._logs.get(key)
        if log is None:
            return
        for charge in reversed(log.charges):
            if charge.at == at:
                log.tokens += tokens - charge.tokens
                charge.tokens = tokens
                return
