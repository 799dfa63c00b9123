"""``GET /metrics``: this API process's series (docs/metrics.md), as ``metrics.api_access``
allows: behind an admin key (``admin``, the admin API's own check), to anyone (``open``), or
only on a listener of its own at ``metrics.api_port`` (``port``), while the main port answers
404 as for any path it does not serve."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from anygate.api.gateway import gateway_of
from anygate.config import AnygateConfig
from anygate.telemetry import scrape, serve


def _exposition() -> Response:
    body, content_type = scrape()
    return Response(body, headers={"content-type": content_type})


async def open_metrics(_request: Request) -> Response:
    return _exposition()


async def admin_metrics(request: Request) -> Response:
    await gateway_of(request).auth.admin(request)
    return _exposition()


def routes(config: AnygateConfig) -> list[Route]:
    metrics = config.metrics
    if not metrics.enabled or metrics.api_access == "port":
        return []
    endpoint = admin_metrics if metrics.api_access == "admin" else open_metrics
    return [Route("/metrics", endpoint, methods=["GET"])]


@contextlib.contextmanager
def listener(config: AnygateConfig) -> Iterator[None]:
    """While the API runs: the metrics port of ``api_access: port``, on ``server.host``."""
    metrics = config.metrics
    if not metrics.enabled or metrics.api_access != "port" or metrics.api_port is None:
        yield
        return
    server = serve(config.server.host, metrics.api_port)
    try:
        yield
    finally:
        server.close()
