"""Serving a process's series: the text a scrape gets, and a small listener of its own.

Workers and control have no HTTP server of their own, and the API may be told to keep its
series off its public port (``metrics.api_access: port``): each then runs prometheus_client's
own WSGI listener in a daemon thread. A scrape only reads counters, so the thread never touches
the event loop, and a loop busy with jobs still answers its scrape.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest, start_http_server


def scrape() -> tuple[bytes, str]:
    """The process's series in the Prometheus text format, and the content type to send."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


@dataclass(frozen=True, slots=True)
class MetricsServer:
    """A running listener; ``port`` is the bound one (a requested 0 picks a free port)."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve(host: str, port: int) -> MetricsServer:
    """Serve ``/metrics`` (any path, in fact) on ``host:port`` from a daemon thread."""
    server, thread = start_http_server(port, addr=host)
    return MetricsServer(server, thread)
