"""The Overview page (docs/console.md#overview): pools, lanes, workers, deployments and the
error rate, kept current over SSE; and pausing or resuming a pool, through the same function as
``POST /admin/pools/{pool}/pause`` (``admin_ops.set_pool_paused``), so the audit line is the same.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from anygate.api.admin_ops import set_pool_paused
from anygate.api.console.guard import Console, console_view
from anygate.api.console.live import live_fragments
from anygate.api.console.overview_data import OverviewData, read_overview
from anygate.api.console.render import PREFIX, environment, render

EVERY_S = 2.0
NOTICES = {"paused": "Pool {pool} paused.", "resumed": "Pool {pool} resumed."}


def _fragments(data: OverviewData, csrf: str) -> list[tuple[str, str]]:
    parts: Any = environment().get_template("overview_parts.html").module
    return [
        ("ov-pools", str(parts.pools(data.pools, data.rates))),
        ("ov-controls", str(parts.controls(data.pools, csrf))),
        ("ov-lanes", str(parts.lanes(data.lanes, data.lanes_truncated))),
        ("ov-workers", str(parts.workers(data.workers))),
        ("ov-deployments", str(parts.deployments(data.deployments, data.breaker_enabled))),
        ("ov-errors", str(parts.errors(data.errors, data.rates))),
    ]


async def _overview(request: Request, console: Console) -> Response:
    data = await read_overview(request, console.gw)
    done, pool = request.query_params.get("done"), request.query_params.get("pool")
    notice = None
    if done in NOTICES and pool in console.gw.config.providers:
        notice = NOTICES[done].format(pool=pool)
    return render(
        request,
        "overview.html",
        session=console.session,
        section="overview",
        data=data,
        every_s=EVERY_S,
        notice=notice,
    )


async def _stream(request: Request, console: Console) -> Response:
    async def fragments() -> list[tuple[str, str]]:
        return _fragments(await read_overview(request, console.gw), console.session.csrf)

    return live_fragments(request, console, fragments, every_s=EVERY_S)


def _toggle(paused: bool) -> Callable[[Request], Awaitable[Response]]:
    async def view(request: Request, console: Console) -> Response:
        pool = await set_pool_paused(
            console.gw, console.actor, request.path_params["pool"], paused, via="console"
        )
        done = "paused" if paused else "resumed"
        return RedirectResponse(f"{PREFIX}/?done={done}&pool={pool}", status_code=303)

    view.__name__ = "_pause" if paused else "_resume"
    return console_view(view)


ROUTES = [
    Route("/", console_view(_overview), methods=["GET"]),
    Route("/overview/stream", console_view(_stream), methods=["GET"]),
    Route("/overview/pools/{pool}/pause", _toggle(True), methods=["POST"]),
    Route("/overview/pools/{pool}/resume", _toggle(False), methods=["POST"]),
]
