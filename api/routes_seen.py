"""Which route served a request, as a bounded label: its template (``/v1/jobs/{job_id}``),
never its path, for the metrics and the access log alike."""

from __future__ import annotations

from typing import Any

from starlette.routing import Match
from starlette.types import Scope


def route_template(scope: Scope) -> str | None:
    """The template of the route that served ``scope`` (after the router saw it); None when no
    route matched (a 404 for an unknown path, or a refusal before routing: 414, 431)."""
    route: Any = scope.get("route")
    if route is None and "endpoint" in scope:  # a Starlette that does not set "route"
        route = _match(scope)
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else None


def _match(scope: Scope) -> Any:
    app = scope.get("app")
    for route in getattr(app, "routes", ()):
        match, _child = route.matches(scope)
        if match is not Match.NONE:
            return route
    return None
