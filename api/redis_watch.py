"""Whether Redis answers, known without asking on every request (SPEC §6: never hang).

Each request that needs Redis waits at most ``server.redis_wait_s`` for it (the API's client has
that timeout and does not retry a timed-out call). Once this watch's ping, every ``INTERVAL_S``
on a connection of its own, has seen Redis fail, requests are answered 503 with ``Retry-After``
almost at once: each joins one shared ping for at most ``JOIN_S``, so the first request after
Redis is back goes through, and none waits on a Redis that does not answer. The ping has its own
connection so that a burst of requests holding every pooled connection is not taken for an
outage. ``/readyz`` says what it knows.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from redis.asyncio import Redis

from anygate.broker.errors import ServiceUnavailableError
from anygate.broker.transient import RedisOutage

log = structlog.get_logger(__name__)

INTERVAL_S = 0.5
JOIN_S = 0.05


class RedisWatch:
    def __init__(self, redis: Redis, wait_s: float) -> None:
        self.redis = redis
        """The watch's own client (a connection or two), closed by its owner."""
        self._wait_s = wait_s
        self._outage = RedisOutage("api")
        self._task: asyncio.Task[None] | None = None
        self._probe: asyncio.Task[bool] | None = None

    @property
    def down(self) -> bool:
        return self._outage.ongoing

    async def ready(self) -> None:
        """Return at once while Redis answers; while it is known to be away, raise the 503 a
        request gets, unless a ping shared by every waiting request answers within ``JOIN_S``."""
        if not self._outage.ongoing:
            return
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self.ping())
        # asyncio.wait cancels nothing when it times out: the shared ping goes on.
        await asyncio.wait({self._probe}, timeout=JOIN_S)
        if self._probe.done() and self._probe.result():
            return
        raise ServiceUnavailableError("the job store is unavailable; retry shortly", retry_after=1)

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(self._wait_s):
                await self.redis.ping()
        except Exception as exc:
            self._outage.failed(exc)
            return False
        self._outage.recovered()
        return True

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="redis-watch")

    async def stop(self) -> None:
        for task in (self._task, self._probe):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _watch(self) -> None:
        while True:
            await self.ping()
            await asyncio.sleep(INTERVAL_S)
