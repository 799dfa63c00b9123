"""The API request's span (kind SERVER), present only when tracing is on (``create_app`` adds
this middleware then, outermost): with tracing off the request path holds no trace of it.

A caller's W3C ``traceparent``/``tracestate`` make it a child in the caller's trace; without
them a new trace begins. The span stays current while the handler runs, so a job queued by
the request carries it to the worker (docs/tracing.md).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from anygate.api.routes_seen import route_template
from anygate.telemetry import tracing


class TracingMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # no response started: the server answers 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with tracing.spans.server(scope["method"], scope["path"], scope["headers"]) as span:
            try:
                await self.app(scope, receive, send_status)
            finally:
                span.done(status, route_template(scope))
