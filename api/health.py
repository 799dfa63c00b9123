"""``/healthz`` says the process is alive; ``/readyz`` that it can do its job (Redis answers and,
in strict durability mode, still runs ``appendonly yes`` with ``appendfsync always``)."""

from __future__ import annotations

from collections.abc import Mapping

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from anygate.api.gateway import gateway_of
from anygate.api.responses import JSONResponse
from anygate.broker.durability import check_durability


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def _not_ready(body: Mapping[str, object], retry_after_s: int = 1) -> Response:
    return JSONResponse(body, status_code=503, headers={"retry-after": str(retry_after_s)})


async def readyz(request: Request) -> Response:
    """Not ready while the process starts (``startup.py``), while Redis does not answer, or when
    strict durability mode's promise no longer holds."""
    if getattr(request.app.state, "gateway", None) is None:
        return _not_ready({"status": "starting", "redis": "waiting"})
    gw = gateway_of(request)
    unreachable = {"status": "unavailable", "redis": "unreachable"}
    # Redis known away: say so at once (joining the shared ping, as every request does);
    # else ask it, within the client's own timeout
    if not await (gw.watch.joined_ping() if gw.watch.link.down else gw.watch.ping()):
        return _not_ready(unreachable)
    settings = gw.config.redis
    try:
        verdict = await check_durability(
            gw.redis, settings.durability, assume_always=settings.assume_appendfsync_always
        )
    except (RedisError, OSError):
        return _not_ready(unreachable)
    body: dict[str, object] = {
        "status": "ready",
        "redis": "ok",
        "config": "valid",
        "durability": verdict.summary,
    }
    state = getattr(request.app.state, "config_state", None)
    if state is not None:  # which config this process runs (docs/operations.md#reloading-…)
        body["config_hash"] = state.hash
        body["config_generation"] = state.generation
    if not verdict.ok:
        # The server was restarted or reconfigured under a running gateway: its answers would
        # no longer keep strict mode's promise, so take it out of rotation and say why.
        return _not_ready({**body, "status": "unavailable", "problem": verdict.problem}, 5)
    return JSONResponse(body)


ROUTES = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
