"""Redis trouble that passes: what it is, and waiting it out (SPEC §2: our faults are not the
provider's).

A Redis that is restarting, paused, failing over or briefly unreachable is our infrastructure's
fault, never a job's or a deployment's: a worker waits it out and carries on where it was
(every script it calls on a job's path is fenced by the job's attempt and safe to run twice),
while the API answers 503 at once instead. ``RedisOutage`` keeps the log to one line when
Redis goes away and one when it is back, however many calls retry meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_random_exponential

log = structlog.get_logger(__name__)

T = TypeVar("T")

_PASSING_REPLIES = ("LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "MISCONF",
                    "NOREPLICAS", "BUSY ")  # fmt: skip
"""Error replies of a server that is starting, failing over, resharding, cannot write its AOF
or runs a long script: each passes by itself."""


def is_transient(exc: BaseException) -> bool:
    """True for Redis being away or not ready, false for a bug (a script error, a wrong type)."""
    if isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError):
        return True  # redis' ConnectionError also covers BusyLoadingError
    if isinstance(exc, ResponseError):
        return str(exc).startswith(_PASSING_REPLIES)
    return False


class RedisOutage:
    """One process's record of Redis being away, so each outage is logged once each way."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._since: float | None = None

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException) -> None:
        if self._since is None:
            self._since = time.monotonic()
            log.warning("redis unavailable; waiting for it", process=self._what,
                        error=f"{type(exc).__name__}: {exc}")  # fmt: skip

    def recovered(self) -> None:
        if self._since is not None:
            log.info("redis available again", process=self._what,
                     after_s=round(time.monotonic() - self._since, 2))  # fmt: skip
            self._since = None


async def until_done(op: Callable[[], Awaitable[T]], outage: RedisOutage) -> T:
    """Run ``op`` until Redis lets it through: transient failures are retried forever with
    jittered exponential backoff (capped at 2 s); anything else is raised. Only for operations
    that are safe to repeat (a call whose reply was lost may have run). Cancellation stops it."""

    def note(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        if exc is not None:
            outage.failed(exc)

    retrying = AsyncRetrying(
        retry=retry_if_exception(is_transient),
        wait=wait_random_exponential(multiplier=0.05, max=2.0),
        before_sleep=note,
        reraise=True,
    )
    result: T = await retrying(op)
    outage.recovered()
    return result


__all__ = ["RedisError", "RedisOutage", "is_transient", "until_done"]
