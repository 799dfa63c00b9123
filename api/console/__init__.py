"""The operator's web console at ``/ui`` (docs/console.md): server-rendered pages over the
admin API's stores and the metrics, a session cookie instead of the admin key, CSRF on every
change, a strict Content-Security-Policy on every answer."""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from anygate.api.console import (
    batches,
    config_page,
    dead_letters,
    jobs,
    login,
    overview,
    tenants,
)
from anygate.api.console.guard import Console, console_view, unknown_page
from anygate.api.console.headers import ConsoleHeaders
from anygate.api.console.render import PREFIX
from anygate.config import AnygateConfig


async def _to_overview(_request: Request) -> Response:
    return RedirectResponse(f"{PREFIX}/", status_code=308)


@console_view
async def _unknown(request: Request, console: Console) -> Response:
    """Behind the session like every page: without one, even a wrong URL asks for the login."""
    raise unknown_page(request)


def routes(config: AnygateConfig) -> list[BaseRoute]:
    if not config.server.console.enabled:
        return []
    pages: list[BaseRoute] = [
        Route("/login", login.login_page, methods=["GET"]),
        Route("/login", login.login, methods=["POST"]),
        Route("/logout", login.logout, methods=["POST"]),
        Mount("/static", StaticFiles(packages=[("anygate.api.console", "static")])),
        *overview.ROUTES,
        *tenants.ROUTES,
        *jobs.ROUTES,
        *batches.ROUTES,
        *dead_letters.ROUTES,
        *config_page.ROUTES,
        Route("/{rest:path}", _unknown, methods=["GET", "POST"]),
    ]
    return [
        Route(PREFIX, _to_overview, methods=["GET"]),
        Mount(PREFIX, routes=pages, middleware=[Middleware(ConsoleHeaders)]),
    ]
