"""Each way a webhook delivery ends logs one line and returns normally: a log call that raises
after the delivery was made turns a delivered webhook into a failed arq job (and a retry)."""

from __future__ import annotations

import ast
import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import structlog

from anygate.config import parse_config
from anygate.workers.control import deliver_webhook
from anygate.workers.webhooks import MAX_TRIES, post_webhook
from tests.support.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("broker", "workers", "api", "client", "config", "ops")
LOG_METHODS = {"debug", "info", "warning", "warn", "error", "exception", "critical", "msg"}
SECRET = b"s" * 32


class _Ok(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        return


@contextlib.contextmanager
def _receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def _nobody_listening() -> str:
    return f"http://127.0.0.1:{free_port()}/hook"


async def test_a_delivered_webhook_logs_its_event_and_returns() -> None:
    with _receiver() as url, structlog.testing.capture_logs() as logs:
        delay = await post_webhook(
            SECRET, url, b"{}", event="job.succeeded", delivery_id="dlv_1", attempt=1
        )
    assert delay is None
    assert logs == [
        {
            "event": "webhook delivered",
            "log_level": "info",
            "delivery": "dlv_1",
            "webhook_event": "job.succeeded",
            "attempt": 1,
        },
    ]


async def test_an_abandoned_webhook_logs_why_and_returns() -> None:
    with structlog.testing.capture_logs() as logs:
        delay = await post_webhook(
            SECRET,
            _nobody_listening(),
            b"{}",
            event="batch.failed",
            delivery_id="dlv_2",
            attempt=MAX_TRIES,
        )
    assert delay is None
    assert logs == [
        {
            "event": "webhook abandoned",
            "log_level": "warning",
            "delivery": "dlv_2",
            "webhook_event": "batch.failed",
            "why": "ConnectError",
        },
    ]


async def test_a_failed_attempt_before_the_last_asks_for_a_retry() -> None:
    with structlog.testing.capture_logs() as logs:
        delay = await post_webhook(
            SECRET, _nobody_listening(), b"{}", event="job.failed", delivery_id="dlv_3", attempt=1
        )
    assert delay is not None
    assert delay >= 0
    assert [entry["event"] for entry in logs] == ["webhook failed; retrying"]


async def test_a_webhook_without_a_secret_is_dropped_with_a_warning() -> None:
    """The API refuses a webhook_url when no secret is set; a control process whose config
    lost the secret since drops what was queued, says so, and does not fail the arq job."""
    ctx: dict[str, Any] = {"config": parse_config({}), "job_try": 1}
    with structlog.testing.capture_logs() as logs:
        await deliver_webhook(ctx, _nobody_listening(), b"{}", "job.succeeded", "dlv_4")
    assert logs == [
        {
            "event": "webhook dropped: security.webhook_secret is not set",
            "log_level": "warning",
            "delivery": "dlv_4",
            "webhook_event": "job.succeeded",
        },
    ]


def _log_calls_with_an_event_keyword(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in LOG_METHODS
            and any(k.arg == "event" for k in node.keywords)
        ):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_no_log_call_passes_event_as_a_keyword() -> None:
    """structlog names a log method's first parameter ``event``: ``log.info("x", event=y)``
    raises TypeError wherever it runs, often on a path no test takes."""
    offenders = [
        where
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for where in _log_calls_with_an_event_keyword(path)
    ]
    assert offenders == []
