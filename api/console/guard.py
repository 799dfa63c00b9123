"""Every console endpoint but the login page and static files goes through ``console_view``
(docs/console.md#security): it finds the session, checks again that its admin key still
works, and refuses a change that lacks the session's CSRF token or comes from another origin.

Without a session, a page redirects to the login (back to where it was asked, on this site
only); anything else (an event stream, a fetch, a form post) is a bare 401. Errors raised by a
view render as an HTML page in the console's frame, naming the field, as the API's do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import structlog
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from anygate.api.console.render import PREFIX, render
from anygate.api.console.sessions import COOKIE, ConsoleSession, ConsoleSessions
from anygate.api.gateway import Gateway, gateway_of
from anygate.broker.errors import (
    AnygateError,
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
)

log = structlog.get_logger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD"})
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True, slots=True)
class Console:
    """What a view gets beside the request: the gateway and who is logged in."""

    gw: Gateway
    session: ConsoleSession

    @property
    def actor(self) -> str:
        return self.session.actor


ConsoleView = Callable[[Request, Console], Awaitable[Response]]


def sessions_of(gw: Gateway) -> ConsoleSessions:
    return ConsoleSessions(gw.redis, gw.broker.keys, gw.config.server.console)


def is_https(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def secure_cookie(request: Request, gw: Gateway) -> bool:
    mode = gw.config.server.console.secure_cookie
    return mode == "always" or (mode == "auto" and is_https(request))


def cookie_name(secure: bool) -> str:
    return f"__Host-{COOKIE}" if secure else COOKIE


def session_token(request: Request) -> str | None:
    return request.cookies.get(cookie_name(True)) or request.cookies.get(cookie_name(False))


async def current_session(request: Request, gw: Gateway) -> ConsoleSession | None:
    """The request's live session whose admin key still works, or None (a session whose key
    was revoked, or dropped from the config, is closed here)."""
    sessions = sessions_of(gw)
    token = session_token(request)
    session = await sessions.find(token)
    if session is None:
        return None
    try:
        await gw.auth.operator(session.key_digest)
    except (AuthenticationError, PermissionDeniedError):
        await sessions.close(token)
        log.info("console session ended: its key no longer works", actor=session.actor)
        return None
    return session


def same_origin(request: Request) -> bool:
    """A change must come from a page of this console: ``Origin`` (or, without it,
    ``Referer``) names this host. Browsers send one of them on every form post and fetch.
    Behind a proxy that rewrites ``Host``, the host the browser used is its
    ``X-Forwarded-Host``; trusting that header costs nothing here, since a change needs the
    session's CSRF token as well, and a cross-site page can neither read the token nor send
    the SameSite=Strict cookie."""
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if not claimed or claimed == "null":
        return False
    netloc = urlsplit(claimed).netloc.lower()
    forwarded = request.headers.get("x-forwarded-host", "").split(",")[0].strip().lower()
    return netloc in {request.headers.get("host", "").lower(), forwarded} - {""}


async def presented_csrf(request: Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        value = (await request.form()).get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


def login_redirect(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{PREFIX}/login?next={quote(here, safe='')}", status_code=303)


def wants_page(request: Request) -> bool:
    """A browser navigating (not a fetch, not the event stream)."""
    accept = request.headers.get("accept", "")
    return request.method in SAFE_METHODS and "text/html" in accept


def console_view(view: ConsoleView) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        gw = gateway_of(request)
        session = await current_session(request, gw)
        if session is None:
            if wants_page(request):
                return login_redirect(request)
            return PlainTextResponse("a console session is required: log in at /ui/login", 401)
        if request.method not in SAFE_METHODS:
            if not same_origin(request):
                return PlainTextResponse("refused: the change did not come from this site", 403)
            if not session.csrf_matches(await presented_csrf(request)):
                return PlainTextResponse("refused: missing or wrong CSRF token", 403)
        request.state.key_id = session.actor  # the access log's caller
        console = Console(gw, session)
        try:
            return await view(request, console)
        except AnygateError as exc:
            return error_page(request, console, exc)

    endpoint.__name__ = view.__name__
    endpoint.__doc__ = view.__doc__
    return endpoint


def unknown_page(request: Request) -> NotFoundError:
    """What a path the console does not serve gets (behind the session, like every page)."""
    return NotFoundError(f"No console page at {request.url.path}.", code="unknown_url")


def error_page(request: Request, console: Console, exc: AnygateError) -> Response:
    return render(
        request,
        "error.html",
        session=console.session,
        status_code=exc.status,
        error=exc,
    )
