"""The access log (docs/operations.md#access-log): one line per request with its fields, the
sample respected for successes, errors always, a switch that turns it off, a streamed answer
logged once it ends, and nothing of a key on the line."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from anygate.api.access_log import (
    EVENT,
    json_line,
    renders_json,
    should_log,
)
from anygate.api.auth import note_caller
from anygate.api.middleware import RequestIdMiddleware
from anygate.api.request_observer import RequestObserver
from anygate.config import LoggingConfig

KEY = "ag-" + "k" * 43


async def job(request: Request) -> Response:
    note_caller(request, "acme", "key_0123")
    return JSONResponse(
        {"id": request.path_params["job_id"]},
        headers={"x-anygate-job-id": request.path_params["job_id"]},
    )


async def refused(request: Request) -> Response:
    note_caller(request, "acme", "key_0123")
    return JSONResponse({"error": "nope"}, status_code=429)


STREAM_PAUSE_S = 0.2


async def stream(_request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        await asyncio.sleep(STREAM_PAUSE_S)
        yield b"data: 2\n\n"

    return StreamingResponse(chunks(), media_type="text/event-stream")


def app(config: LoggingConfig, draw: Callable[[], float] | None = None) -> Starlette:
    extra: dict[str, Any] = {"draw": draw} if draw is not None else {}
    return Starlette(
        routes=[
            Route("/v1/jobs/{job_id}", job),
            Route("/refused", refused),
            Route("/stream", stream),
        ],
        middleware=[
            Middleware(RequestObserver, logging=config, **extra),
            Middleware(RequestIdMiddleware),
        ],
    )


async def call(
    application: Starlette, *paths: str, headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    transport = httpx.ASGITransport(app=application)
    with structlog.testing.capture_logs() as logs:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for path in paths:
                await client.get(path, headers=headers or {})
    return [line for line in logs if line["event"] == EVENT]


async def test_one_line_per_request_with_every_field() -> None:
    lines = await call(app(LoggingConfig()), "/v1/jobs/job_42", headers={"x-request-id": "req-abc"})
    assert len(lines) == 1
    line = lines[0]
    assert line["log_level"] == "info"
    assert {k: line[k] for k in ("method", "route", "status", "tenant", "key_id")} == {
        "method": "GET",
        "route": "/v1/jobs/{job_id}",
        "status": 200,
        "tenant": "acme",
        "key_id": "key_0123",
    }
    assert line["request_id"] == "req-abc"
    assert line["job_id"] == "job_42"
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] >= 0


async def test_an_unmatched_path_is_logged_without_a_route_and_without_the_path() -> None:
    lines = await call(app(LoggingConfig()), "/no/such/thing?key=" + KEY)
    assert [(line["status"], line["route"]) for line in lines] == [(404, None)]
    assert KEY not in repr(lines)


async def test_switched_off_logs_nothing() -> None:
    assert await call(app(LoggingConfig(access_log=False)), "/v1/jobs/j1", "/refused") == []


async def test_sample_keeps_successes_whose_draw_falls_under_it_and_every_error() -> None:
    draws = iter([0.1, 0.9, 0.29, 0.3])
    application = app(LoggingConfig(access_log_sample=0.3), draw=lambda: next(draws))
    lines = await call(application, *[f"/v1/jobs/j{i}" for i in range(4)], "/refused")
    assert [line["job_id"] for line in lines if line["status"] == 200] == ["j0", "j2"]
    assert [line["status"] for line in lines if line["status"] != 200] == [429]


async def test_a_sample_of_zero_still_logs_errors() -> None:
    lines = await call(app(LoggingConfig(access_log_sample=0.0)), "/v1/jobs/j1", "/refused", "/x")
    assert sorted(line["status"] for line in lines) == [404, 429]


async def test_a_stream_is_logged_once_it_has_ended() -> None:
    lines = await call(app(LoggingConfig()), "/stream")
    assert len(lines) == 1
    assert lines[0]["route"] == "/stream"
    assert lines[0]["duration_ms"] >= STREAM_PAUSE_S * 1000


@pytest.mark.parametrize("status", [400, 404, 429, 500, 503])
def test_errors_are_always_logged_whatever_the_sample(status: int) -> None:
    assert should_log(status, 0.0, lambda: 0.99)


def test_sample_bounds() -> None:
    assert should_log(200, 1.0, lambda: 0.999999)
    assert not should_log(200, 0.0, lambda: 0.0)
    assert should_log(200, 0.5, lambda: 0.49)
    assert not should_log(200, 0.5, lambda: 0.5)


class TestDirectJsonLine:
    """In production (JSON logs) the access line is rendered by orjson, not structlog's chain;
    it must read exactly like a structlog line and scrub what a caller can choose."""

    def test_the_line_has_structlogs_shape(self) -> None:
        fields = {
            "method": "POST",
            "route": "/v1/chat/completions",
            "status": 200,
            "duration_ms": 12.5,
            "tenant": "acme",
            "key_id": "key_1",
            "request_id": "req_abc",
            "job_id": "job_1",
        }
        now = datetime(2026, 12, 3, 10, 9, 29, 412909, tzinfo=UTC)
        line = json_line(fields, "info", now)
        assert line.endswith(b"\n")
        assert orjson.loads(line) == {
            **fields,
            "event": "http request",
            "level": "info",
            "timestamp": "2026-12-03T10:09:29.412909Z",
        }

    def test_a_caller_chosen_request_id_is_scrubbed(self) -> None:
        key = "ag-" + "x" * 40
        fields = {"request_id": key, "route": None, "status": 200}
        decoded = orjson.loads(json_line(fields, "info", datetime.now(UTC)))
        assert key not in str(decoded)
        assert decoded["request_id"] == "[redacted]"

    def test_direct_lines_follow_the_renderer_structlog_was_given(self) -> None:
        before = structlog.get_config()
        try:
            structlog.configure(processors=[structlog.processors.JSONRenderer()])
            assert renders_json()
            structlog.configure(processors=[structlog.dev.ConsoleRenderer()])
            assert not renders_json()
        finally:
            structlog.configure(**before)
