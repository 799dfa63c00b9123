"""One log line per HTTP request: the access log (docs/operations.md#access-log).

A pure ASGI middleware, so it never buffers a stream: it notes the status and the job id from
``http.response.start`` and writes its line when the application returns, which for a streamed
answer (SSE, chunked chat) is when the stream ends, so ``duration_ms`` covers all of it.

What it writes is chosen field by field: the method, the route *template* (never the path, nor
the query string, where Google's ``?key=`` lives), the status, the duration, who called (tenant
and key *id*, which ``api/auth.py`` notes on ``request.state``), the request id and the job id.
No header and no body, so no secret reaches the line even before ``core/redaction.py``'s
scrubbing.

Sampling (``logging.access_log_sample``) thins out successful requests only: a request answered
400 or above is always logged, since those are the ones someone will look for.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from anygate.api.middleware import REQUEST_ID_SCOPE_KEY
from anygate.config import LoggingConfig

log = structlog.get_logger("anygate.access")

JOB_ID_HEADER = b"x-anygate-job-id"
EVENT = "http request"
CLIENT_GONE = 499
"""The status logged for a request whose caller went away before any answer began (nginx's
convention; nothing is sent)."""


def should_log(status: int, sample: float, draw: Callable[[], float]) -> bool:
    """Errors always; a success with probability ``sample`` (``draw`` is uniform in [0, 1))."""
    if status >= 400:
        return True
    if sample >= 1.0:
        return True
    if sample <= 0.0:
        return False
    return draw() < sample


def route_template(scope: Scope) -> str | None:
    """The matched route's template (``/v1/jobs/{job_id}``); None when no route matched (a
    404 for an unknown path, or a refusal before routing: 414, 431)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None


def access_fields(
    scope: Scope, status: int, duration_s: float, job_id: str | None
) -> dict[str, Any]:
    """The line's fields, from what the request left in its scope."""
    state = scope.get("state") or {}
    return {
        "method": scope.get("method"),
        "route": route_template(scope),
        "status": status,
        "duration_ms": round(duration_s * 1000, 2),
        "tenant": state.get("tenant_id"),
        "key_id": state.get("key_id"),
        "request_id": scope.get(REQUEST_ID_SCOPE_KEY),
        "job_id": job_id,
    }


class AccessLogMiddleware:
    """``draw``: the sampling's random source, injectable so a test can force its choice."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        logging: LoggingConfig,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.app = app
        self._enabled = logging.access_log
        self._sample = logging.access_log_sample
        self._draw = draw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._enabled:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        job_id: str | None = None

        async def noting_send(message: Message) -> None:
            nonlocal status, job_id
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for name, value in message.get("headers", ()):
                    if name.lower() == JOB_ID_HEADER:
                        job_id = value.decode("latin-1")
                        break
            await send(message)

        try:
            await self.app(scope, receive, noting_send)
        except asyncio.CancelledError:
            status = status or CLIENT_GONE  # the caller left before any answer began
            raise
        except Exception:
            # Starlette's outermost middleware turns the exception into a 500 (and logs it);
            # a response already under way stays whatever status it started with.
            status = status or 500
            raise
        finally:
            if should_log(status, self._sample, self._draw):
                fields = access_fields(scope, status, time.perf_counter() - started, job_id)
                if status >= 500:
                    log.warning(EVENT, **fields)
                else:
                    log.info(EVENT, **fields)
