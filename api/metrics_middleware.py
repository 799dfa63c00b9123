"""HTTP traffic as process series (docs/metrics.md): every answered request counted by route
template, method and status, and timed until its response has ended (a stream: its last
byte, or the moment its caller left).

Pure ASGI, like ``middleware.py``: nothing buffered, one clock read at each end. The route
template comes from Starlette's own match (``scope["route"]``, set by the router on the scope
this middleware holds), so ``/v1/jobs/job_abc`` counts as ``/v1/jobs/{job_id}`` and the label
stays bounded; a path no route matched counts as ``UNMATCHED``.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from anygate.telemetry import observe_http

UNMATCHED = "unmatched"


def route_template(scope: Scope) -> str:
    """The template of the route that served ``scope`` (after the router saw it)."""
    route: Any = scope.get("route")
    if route is None and "endpoint" in scope:  # a Starlette that does not set "route"
        route = _match(scope)
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


def _match(scope: Scope) -> Any:
    app = scope.get("app")
    for route in getattr(app, "routes", ()):
        match, _child = route.matches(scope)
        if match is not Match.NONE:
            return route
    return None


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app raises before it responds

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            observe_http(
                route_template(scope), scope["method"], status, time.perf_counter() - started
            )
