"""``/healthz`` says the process is alive; ``/readyz`` that it can do its job (Redis answers)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from anygate.api.gateway import gateway_of
from anygate.api.responses import JSONResponse


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Not ready while the process starts (``startup.py``) or while Redis does not answer."""
    if getattr(request.app.state, "gateway", None) is None:
        return JSONResponse(
            {"status": "starting", "redis": "waiting"},
            status_code=503,
            headers={"retry-after": "1"},
        )
    gw = gateway_of(request)
    if not await gw.watch.ping():
        return JSONResponse(
            {"status": "unavailable", "redis": "unreachable"},
            status_code=503,
            headers={"retry-after": "1"},
        )
    return JSONResponse({"status": "ready", "redis": "ok", "config": "valid"})


ROUTES = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
