"""A webhook receiver for tests: a local HTTP server that records every POST and answers with
the status its ``answer`` picks (so tests can refuse deliveries and watch the retries)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from tests.support.processes import free_port


@dataclass(frozen=True, slots=True)
class Delivery:
    headers: dict[str, str]
    body: bytes
    status: int
    """What the receiver answered."""

    @property
    def delivery_id(self) -> str:
        return self.headers["x-anygate-delivery"]

    @property
    def event(self) -> str:
        return self.headers["x-anygate-event"]

    @property
    def subject(self) -> str:
        """The id of the job or batch the delivery is about."""
        subject: str = orjson.loads(self.body)["data"]["id"]
        return subject


@dataclass
class WebhookReceiver:
    answer: Callable[[WebhookReceiver], int] = lambda _r: 200
    """The status for the next delivery (``seen`` holds the ones before it)."""
    refusing: bool = False
    """A switch an ``answer`` may read (``refuse_while_refusing``)."""
    port: int = 0
    seen: list[Delivery] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def delivered(self, subject: str) -> bool:
        return any(d.status == 200 and d.subject == subject for d in self.seen)


def refuse_while_refusing(receiver: WebhookReceiver) -> int:
    return 503 if receiver.refusing else 200


def refuse_first(n: int) -> Callable[[WebhookReceiver], int]:
    """500 to the first ``n`` deliveries, then 200."""
    return lambda receiver: 500 if len(receiver.seen) < n else 200


def read_whole_body(handler: BaseHTTPRequestHandler) -> bytes | None:
    """The request's body, or None (and a 400) when the sender hung up before it was all there:
    a delivery cut off by its sender's death is no delivery, as for any HTTP server."""
    length = int(handler.headers.get("content-length") or 0)
    body = handler.rfile.read(length)
    if len(body) == length:
        return body
    handler.send_response(400)
    handler.send_header("content-length", "0")
    handler.end_headers()
    return None


@contextlib.contextmanager
def webhook_receiver(
    answer: Callable[[WebhookReceiver], int] = lambda _r: 200, *, refusing: bool = False
) -> Iterator[WebhookReceiver]:
    """A receiver on a free local port for the length of the block."""
    receiver = WebhookReceiver(answer, refusing, free_port())
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = read_whole_body(self)
            if body is None:
                return
            with lock:
                status = receiver.answer(receiver)
                receiver.seen.append(Delivery(dict(self.headers), body, status))
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", receiver.port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
