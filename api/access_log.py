"""One log line per HTTP request: the access log (docs/operations.md#access-log).

Written by ``api/request_observer.py`` (the one middleware that also counts the request for
the metrics) when the application returns, which for a streamed answer (SSE, chunked chat) is
when the stream ends, so ``duration_ms`` covers all of it.

What it writes is chosen field by field: the method, the route *template* (never the path, nor
the query string, where Google's ``?key=`` lives), the status, the duration, who called (tenant
and key *id*, which ``api/auth.py`` notes on ``request.state``), the request id and the job id.
No header and no body, so no secret reaches the line even before ``core/redaction.py``'s
scrubbing.

Sampling (``logging.access_log_sample``) thins out successful requests only: a request answered
400 or above is always logged, since those are the ones someone will look for.

When the process logs JSON (``ops/logging.py`` in production), the line is rendered here with
orjson, in the shape structlog gives every other line, and written at the end of the event
loop's turn with the turn's other lines in one write: structlog's
processor chain cost about a tenth of a loaded API process's time at one line per request
(bench/observability.py). Its fields need no general scrubbing: all are the gateway's own
values except the request id, which a caller may choose, so that one is scrubbed.
"""

from __future__ import annotations

import asyncio
import logging as stdlib_logging
import random
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from starlette.types import Scope

from anygate.api.middleware import REQUEST_ID_SCOPE_KEY
from anygate.api.routes_seen import route_template
from anygate.config import LoggingConfig
from anygate.core.redaction import scrub

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


def access_fields(
    scope: Scope, status: int, duration_s: float, job_id: str | None
) -> dict[str, Any]:
    """The line's fields, from what the request left in its scope."""
    state = scope.get("state") or {}
    return {
        "method": scope.get("method"),
        "route": route_template(scope),  # None: no route matched (404, 414, 431)
        "status": status,
        "duration_ms": round(duration_s * 1000, 2),
        "tenant": state.get("tenant_id"),
        "key_id": state.get("key_id"),
        "request_id": scope.get(REQUEST_ID_SCOPE_KEY),
        "job_id": job_id,
    }


def renders_json() -> bool:
    """Whether structlog is set up to render JSON lines (its last processor), as
    ``ops/logging.py`` does when stderr is not a terminal."""
    processors: list[Any] = list(structlog.get_config().get("processors") or [])
    return bool(processors) and isinstance(processors[-1], structlog.processors.JSONRenderer)


def json_line(fields: dict[str, Any], level: str, now: datetime) -> bytes:
    """The access line as structlog's JSON renderer would write it (same keys, ISO UTC time)."""
    line = {
        **fields,
        "request_id": scrub(fields["request_id"]) if fields.get("request_id") else None,
        "event": EVENT,
        "level": level,
        "timestamp": now.isoformat().replace("+00:00", "Z"),
    }
    return orjson.dumps(line) + b"\n"


def write_lines(lines: list[bytes]) -> None:
    """Whole lines in one write, flushed, as structlog's PrintLogger writes each of its own."""
    stream = sys.stderr
    stream.flush()  # anything the text layer holds goes first
    raw = getattr(stream, "buffer", None)
    if raw is None:
        stream.write(b"".join(lines).decode())
    else:
        raw.write(b"".join(lines))
    stream.flush()


class AccessLog:
    """Decides whether a request's line is written (``logging``), and writes it.
    ``draw``: the sampling's random source, injectable so a test can force its choice."""

    def __init__(
        self, logging: LoggingConfig, *, draw: Callable[[], float] = random.random
    ) -> None:
        self.enabled = logging.access_log
        self._sample = logging.access_log_sample
        self._draw = draw
        self._direct: bool | None = None
        """Write JSON lines directly: decided at the first request, once logging is set up."""
        self._pending: list[bytes] = []
        """Lines of this event-loop turn, written together at its end (one write for the
        answers of a busy turn rather than one each)."""
        self._levels: dict[int, bool] = {}

    def request_done(
        self, scope: Scope, status: int, duration_s: float, job_id: str | None
    ) -> None:
        if not self.enabled or not should_log(status, self._sample, self._draw):
            return
        fields = access_fields(scope, status, duration_s, job_id)
        if self._direct is None:
            self._direct = renders_json()
        warning = status >= 500
        if not self._direct:
            (log.warning if warning else log.info)(EVENT, **fields)
            return
        level = stdlib_logging.WARNING if warning else stdlib_logging.INFO
        enabled = self._levels.get(level)
        if enabled is None:  # the process's log_level, as structlog filters it
            enabled = self._levels[level] = log.is_enabled_for(level)
        if not enabled:
            return
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append(json_line(fields, "warning" if warning else "info", datetime.now(UTC)))

    def _flush(self) -> None:
        lines, self._pending = self._pending, []
        write_lines(lines)
