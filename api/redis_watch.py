"""Whether Redis answers, known without asking on every request (never hang: docs/architecture.md,
"Redis outages").

Each request that needs Redis waits at most ``server.redis_wait_s`` for it (the API's client has
that timeout and does not retry a timed-out call). Once the process's ``RedisLink`` knows Redis
is away (its watch pings every second on a connection of its own, so that a burst of requests
holding every pooled connection is not taken for an outage), requests are answered 503 with
``Retry-After`` almost at once: each joins one shared ping for at most ``JOIN_S``, so the first
request after Redis is back goes through, and none waits on a Redis that does not answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from redis.asyncio import Redis

from anygate.broker.errors import ServiceUnavailableError
from anygate.broker.redis_link import RedisLink
from anygate.telemetry import observe_redis_roundtrip

JOIN_S = 0.05


class RedisWatch:
    def __init__(self, link: RedisLink, redis: Redis) -> None:
        self.link = link
        self.redis = redis
        """The watch's own client (a connection or two), closed by its owner."""
        self._probe: asyncio.Task[bool] | None = None

    async def ready(self) -> None:
        """Return at once while Redis answers; while it is known to be away, raise the 503 a
        request gets, unless a ping shared by every waiting request answers within ``JOIN_S``."""
        if not self.link.down or await self.joined_ping():
            return
        raise ServiceUnavailableError("the job store is unavailable; retry shortly", retry_after=1)

    async def joined_ping(self) -> bool:
        """Whether Redis answered the ping shared by every waiting request within ``JOIN_S``."""
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self.ping())
        # asyncio.wait cancels nothing when it times out: the shared ping goes on.
        await asyncio.wait({self._probe}, timeout=JOIN_S)
        return self._probe.done() and self._probe.result()

    async def ping(self) -> bool:
        """Bounded by the client's own timeout (``redis_wait_s``): no asyncio timeout around a
        redis-py call, whose cancellation mid-read would race the client's own timer."""
        started = time.perf_counter()
        try:
            await self.redis.ping()
        except Exception as exc:  # any failure means: not reachable now
            self.link.lost(exc)
            return False
        observe_redis_roundtrip(time.perf_counter() - started)
        self.link.back()
        return True

    async def stop(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
