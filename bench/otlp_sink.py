"""A stand-in OTLP/HTTP collector for ``observability.py``: answers 200 to every POST and keeps
only counts, so that a traced process pays for building, batching, encoding and sending its
spans, and for nothing a real collector would add on this machine (decoding, storage).

Loopback only, one thread per connection (an exporter keeps its connection open, and the API
and the worker each have one), stopped with the run.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the exporter expects
    server: _Server

    def do_POST(self) -> None:
        size = int(self.headers.get("content-length") or 0)
        self.rfile.read(size)
        self.server.count(self.path, size)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")  # an empty ExportTraceServiceResponse
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: a line per export would land on the table's terminal."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self._lock = threading.Lock()
        self.posts: dict[str, int] = {}
        self.bytes = 0

    def count(self, path: str, size: int) -> None:
        with self._lock:
            self.posts[path] = self.posts.get(path, 0) + 1
            self.bytes += size

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {f"posts {path}": n for path, n in self.posts.items()} | {"bytes": self.bytes}


class OtlpSink:
    """``with OtlpSink() as sink:`` set ``OTEL_EXPORTER_OTLP_ENDPOINT`` to ``sink.endpoint``."""

    def __init__(self) -> None:
        self._server = _Server()
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="otlp-sink", daemon=True
        )

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def counts(self) -> dict[str, int]:
        """Export requests so far by path (``/v1/traces`` is where spans arrive), and bytes."""
        return self._server.snapshot()

    def __enter__(self) -> OtlpSink:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
