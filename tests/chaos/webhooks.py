"""The test's own webhook receiver: answers 200 to every POST and keeps what arrived, its
signature checked on arrival (a signature carries its time and ages out: a receiver checks it
when it comes, as ``anygate.workers.webhooks.verify`` expects)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from anygate.workers.webhooks import verify
from tests.support.processes import free_port
from tests.support.webhooks import read_whole_body


@dataclass(frozen=True, slots=True)
class Delivery:
    delivery_id: str
    event: str
    signed: bool
    """The signature was valid when the delivery arrived."""
    at: float


@dataclass
class Deliveries:
    url: str
    seen: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> list[Delivery]:
        with self.lock:
            return list(self.seen)


@contextlib.contextmanager
def receiver(secret: str) -> Iterator[Deliveries]:
    port = free_port()
    deliveries = Deliveries(f"http://127.0.0.1:{port}/hooks")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = read_whole_body(self)
            if body is None:
                return
            signed = verify(secret.encode(), body, self.headers.get("x-anygate-signature", ""))
            got = Delivery(
                self.headers.get("x-anygate-delivery", ""),
                self.headers.get("x-anygate-event", ""),
                signed,
                time.time(),
            )
            with deliveries.lock:
                deliveries.seen.append(got)
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield deliveries
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
