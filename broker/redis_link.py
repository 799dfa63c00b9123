"""A process's link to Redis: ride out an outage, retry with jittered backoff, and say so once.

No anygate process may exit because Redis is restarting, paused, or not up yet when the
process starts (docs/architecture.md, "Redis outages"). What each process retries differs (a
start-up step, a whole arq session), the rules do not, so they live here:

- what counts as an outage (:func:`is_outage`): a connection refused, reset or timed out,
  Redis still loading its AOF, a replica turned read-only by a fail-over. Anything else (a
  wrong password, a script error, a bug) is raised: it must stop the process loudly;
- how long to wait between tries: tenacity's full-jitter exponential backoff, from
  ``FIRST_WAIT_S`` up to ``MAX_WAIT_S``, so processes that lost Redis together do not come
  back in step, and each is back within about ``MAX_WAIT_S`` of Redis;
- what to log: one warning when Redis is lost, one info line when it is back (once it has
  answered for ``SETTLE_S``; with how long it was away), however many tries and however many
  parts of the process saw the outage.

``watch()`` pings Redis every ``WATCH_INTERVAL_S``, so a process notices an outage (and its
end) even while idle, and ``down`` is a current answer for readiness.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from redis.asyncio import Redis
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    ReadOnlyError,
    ResponseError,
    WatchError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_random_exponential

from anygate.telemetry import count_redis_error, observe_redis_roundtrip

log = structlog.get_logger(__name__)

T = TypeVar("T")

FIRST_WAIT_S = 0.1
MAX_WAIT_S = 2.0
WATCH_INTERVAL_S = 1.0
WATCH_TIMEOUT_S = 2.0
"""A PING slower than this counts as Redis gone (paused, or a network that drops packets)."""
SETTLE_S = 1.0

_PASSING_REPLIES = (
    "LOADING",
    "READONLY",
    "MASTERDOWN",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "MOVED",  # a cluster's slot moved: a plain client of one node (arq's) reconnects to the new
    "ASK",
    "MISCONF",
    "NOREPLICAS",
    "BUSY ",
)
"""Error replies of a server that is starting, failing over, resharding, cannot write its AOF
or runs a long script: each passes by itself."""


def is_outage(exc: BaseException) -> bool:
    """Errors that pass when Redis is back. ``OSError`` and ``TimeoutError`` are the builtins
    asyncio raises before redis-py wraps them (and a subscription never confirmed); redis-py
    reports a connection lost while a transaction watches keys as a ``WatchError``, which
    otherwise only means "try again" too."""
    if isinstance(exc, AuthenticationError | AuthorizationError):
        return False  # a configuration error: waiting will not fix it
    if isinstance(exc, ResponseError) and not isinstance(exc, ReadOnlyError):
        return str(exc).startswith(_PASSING_REPLIES)
    return isinstance(
        exc,
        RedisConnectionError
        | RedisTimeoutError
        | ReadOnlyError
        | WatchError
        | OSError
        | TimeoutError,
    )


class _StoppingError(Exception):
    """Raised instead of an attempt once the caller is stopping: ends a retry loop quietly."""


class RedisLink:
    """``what`` names the process in its log lines (``api``, ``worker openai-…``, ``control``).

    Redis counts as back once it has answered and no part of the process has met an error for
    ``SETTLE_S`` since: commands sent before Redis came back may still time out just after
    (they waited a full socket timeout), and one outage must not read as two in the log.
    """

    def __init__(self, what: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._what = what
        self._clock = clock
        self._lost_at: float | None = None
        self._answered_at: float | None = None
        """Set while settling: when Redis first answered again."""

    @property
    def down(self) -> bool:
        """Redis has not answered since the outage began."""
        return self._lost_at is not None and self._answered_at is None

    def lost(self, exc: BaseException) -> None:
        """Any part of the process that met an outage reports it; only the first report of an
        outage is logged, every one is counted (``anygate_redis_errors_total``)."""
        count_redis_error(exc)
        if self._lost_at is None:
            self._lost_at = self._clock()
            log.warning("redis unreachable; reconnecting", process=self._what, error=_describe(exc))
        self._answered_at = None

    def back(self) -> None:
        """Redis answered. The outage is over (logged, once) when it still answers
        ``SETTLE_S`` later with no error reported meanwhile (``watch`` asks every second)."""
        if self._lost_at is None:
            return
        now = self._clock()
        if self._answered_at is None:
            self._answered_at = now
        if now - self._answered_at >= SETTLE_S:
            away = self._answered_at - self._lost_at
            self._lost_at = self._answered_at = None
            log.info("redis reachable again", process=self._what, away_s=round(away, 1))

    async def retry(
        self, step: Callable[[], Awaitable[T]], *, until: asyncio.Event | None = None
    ) -> T | None:
        """``step()`` until it returns; its result. An outage is retried after a jittered,
        growing wait; anything else is raised. Once ``until`` is set (the process is
        stopping) a wait ends at once and no attempt follows: ``None``. Cancelling the caller
        stops the waiting too."""

        async def attempt() -> T:
            if until is not None and until.is_set():
                raise _StoppingError
            return await step()

        retrying = AsyncRetrying(
            retry=retry_if_exception(is_outage),
            wait=wait_random_exponential(multiplier=FIRST_WAIT_S, max=MAX_WAIT_S),
            sleep=_interruptible_sleep(until),
            before_sleep=self._report,
            reraise=True,
        )
        try:
            result: T = await retrying(attempt)
        except _StoppingError:
            return None
        self.back()
        return result

    async def watch(self, redis: Redis) -> None:
        """Ping Redis forever (a task, cancelled when the process stops): notices an outage
        while the process is idle, and its end."""
        while True:
            started = time.perf_counter()
            try:
                await asyncio.wait_for(redis.ping(), WATCH_TIMEOUT_S)
            except Exception as exc:  # whatever it is, Redis did not answer
                self.lost(exc)
            else:
                observe_redis_roundtrip(time.perf_counter() - started)
                self.back()
            await asyncio.sleep(WATCH_INTERVAL_S)

    def _report(self, state: RetryCallState) -> None:
        if state.outcome is not None:
            exc = state.outcome.exception()
            if exc is not None:
                self.lost(exc)


def _interruptible_sleep(until: asyncio.Event | None) -> Callable[[float], Awaitable[None]]:
    async def sleep(seconds: float) -> None:
        if until is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(until.wait(), seconds)

    return sleep


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
