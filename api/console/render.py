"""HTML from Jinja2 templates, autoescaped: everything a page shows (a tenant's name, a job's
error, a model's alias) arrives escaped, so nothing a tenant sent can run as script.

Templates live in ``templates/``; static files (our CSS and JS, the vendored chart library) in
``static/``, addressed with a content hash so a browser may keep them while they do not change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from anygate.api.console.sessions import ConsoleSession

PREFIX = "/ui"

SECTIONS = (
    ("overview", "Overview", f"{PREFIX}/"),
    ("tenants", "Tenants", f"{PREFIX}/tenants"),
    ("jobs", "Jobs", f"{PREFIX}/jobs"),
    ("batches", "Batches", f"{PREFIX}/batches"),
    ("dead", "Dead letters", f"{PREFIX}/dead-letters"),
    ("config", "Config", f"{PREFIX}/config"),
)
"""The navigation, in order: (id, label, path)."""


@cache
def static_version(name: str) -> str:
    """A short hash of a static file's content: its URL changes when it does."""
    data = resources.files("anygate.api.console").joinpath("static", *name.split("/")).read_bytes()
    return hashlib.sha256(data).hexdigest()[:12]


def static_url(name: str) -> str:
    return f"{PREFIX}/static/{name}?v={static_version(name)}"


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("anygate.api.console", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(static=static_url, sections=SECTIONS, prefix=PREFIX)
    return env


def fragment(template: str, **context: Any) -> str:
    """A partial template rendered alone, for a live page's stream (the page includes the same
    partial, so the first render and every update are one markup)."""
    return environment().get_template(template).render(**context)


def render(
    request: Request,
    template: str,
    *,
    session: ConsoleSession | None,
    section: str | None = None,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    page = environment().get_template(template)
    html = page.render(
        request=request,
        session=session,
        csrf=session.csrf if session else "",
        section=section,
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers=headers)
