"""``/healthz`` says the process is alive; ``/readyz`` that it can do its job (Redis answers and,
in strict durability mode, still runs ``appendonly yes`` with ``appendfsync always``)."""

from __future__ import annotations

import asyncio

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from anygate.api.gateway import gateway_of
from anygate.api.responses import JSONResponse
from anygate.broker.durability import check_durability


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    gw = gateway_of(request)
    settings = gw.config.redis
    try:
        async with asyncio.timeout(1.0):
            await gw.redis.ping()
            verdict = await check_durability(
                gw.redis, settings.durability, assume_always=settings.assume_appendfsync_always
            )
    except (RedisError, OSError, TimeoutError):
        return JSONResponse(
            {"status": "unavailable", "redis": "unreachable"},
            status_code=503,
            headers={"retry-after": "1"},
        )
    body = {"status": "ready", "redis": "ok", "config": "valid", "durability": verdict.summary}
    if not verdict.ok:
        # The server was restarted or reconfigured under a running gateway: its answers would
        # no longer keep strict mode's promise, so take it out of rotation and say why.
        body.update(status="unavailable", problem=verdict.problem)
        return JSONResponse(body, status_code=503, headers={"retry-after": "5"})
    return JSONResponse(body)


ROUTES = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
