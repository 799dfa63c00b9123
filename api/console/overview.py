"""The Overview page (docs/console.md#overview)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from anygate.api.console.guard import Console, console_view
from anygate.api.console.render import render


async def _overview(request: Request, console: Console) -> Response:
    return render(request, "overview.html", session=console.session, section="overview")


ROUTES = [Route("/", console_view(_overview), methods=["GET"])]
