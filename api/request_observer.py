"""Every HTTP request, seen once on its way out: counted and timed for the metrics
(docs/metrics.md) and written to the access log (docs/operations.md#access-log).

One pure ASGI middleware for both, so a request pays for one wrapper of ``send`` and two clock
reads, not two of each (the bench's observability scenario measures what is left). Nothing is
buffered: the status and the job id are noted from ``http.response.start``, and the request is
recorded when the application returns, which for a stream is when its last byte is sent or its
caller left.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from anygate.api.access_log import CLIENT_GONE, JOB_ID_HEADER, AccessLog
from anygate.api.routes_seen import route_template
from anygate.config import LoggingConfig
from anygate.telemetry import observe_http

UNMATCHED = "unmatched"
"""The route label of a request no route served (the metrics' label stays bounded)."""


class RequestObserver:
    def __init__(
        self,
        app: ASGIApp,
        *,
        logging: LoggingConfig,
        metrics: bool = True,
        draw: Callable[[], float] = random.random,
    ) -> None:
        """``metrics``: ``metrics.enabled``; off, the HTTP series are not recorded either."""
        self.app = app
        self._access = AccessLog(logging, draw=draw)
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        job_id: str | None = None
        wants_job_id = self._access.enabled

        async def noting_send(message: Message) -> None:
            nonlocal status, job_id
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if wants_job_id:
                    for name, value in message.get("headers", ()):
                        if name.lower() == JOB_ID_HEADER:
                            job_id = value.decode("latin-1")
                            break
            await send(message)

        gone = False
        try:
            await self.app(scope, receive, noting_send)
        except asyncio.CancelledError:
            gone = not status  # the caller left before any answer began
            raise
        finally:
            # An exception before any answer: Starlette's outermost middleware answers 500.
            duration_s = time.perf_counter() - started
            answered = status or 500
            if self._metrics:
                route = route_template(scope) or UNMATCHED
                observe_http(route, scope["method"], answered, duration_s)
            self._access.request_done(scope, CLIENT_GONE if gone else answered, duration_s, job_id)
