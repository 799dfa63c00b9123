"""Logging in and out of the console (docs/console.md#sessions).

The admin key is typed into a form and posted once; the answer sets the session cookie
(HttpOnly, SameSite=Strict, Secure over HTTPS), so the key is never in a URL, a page, local
storage or the cookie. The login form has its own CSRF token (a cookie the form must echo), so
another site cannot log a browser into a console of its choosing. Failed logins are counted per
client address and refused for the rest of the minute past ``login_attempts_per_minute``.
"""

from __future__ import annotations

import hmac
import secrets

import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from anygate.api.admin import audit
from anygate.api.auth import hash_key
from anygate.api.console.guard import (
    CSRF_FIELD,
    Console,
    console_view,
    cookie_name,
    current_session,
    same_origin,
    secure_cookie,
    session_token,
    sessions_of,
)
from anygate.api.console.render import PREFIX, render
from anygate.api.gateway import gateway_of
from anygate.broker.errors import AuthenticationError, PermissionDeniedError

log = structlog.get_logger(__name__)

LOGIN_COOKIE = "anygate_console_login"
MAX_KEY_CHARS = 512


def safe_next(target: str | None) -> str:
    """Where to go after login: a console path on this site, never another site."""
    if (
        target
        and target.startswith(f"{PREFIX}/")
        and not target.startswith("//")
        and "\\" not in target
        and "://" not in target
    ):
        return target
    return f"{PREFIX}/"


def _form(request: Request, *, next_path: str, error: str | None, status: int) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        session=None,
        login_csrf=token,
        next_path=next_path,
        error=error,
        status_code=status,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        path=f"{PREFIX}/login",
        httponly=True,
        samesite="strict",
        secure=secure_cookie(request, gateway_of(request)),
    )
    return response


async def login_page(request: Request) -> Response:
    gw = gateway_of(request)
    next_path = safe_next(request.query_params.get("next"))
    if await current_session(request, gw) is not None:
        return RedirectResponse(next_path, status_code=303)
    return _form(request, next_path=next_path, error=None, status=200)


async def login(request: Request) -> Response:
    gw = gateway_of(request)
    form = await request.form()
    next_path = safe_next(str(form.get("next") or ""))
    echoed, expected = str(form.get(CSRF_FIELD) or ""), request.cookies.get(LOGIN_COOKIE) or ""
    if not same_origin(request) or not expected or not hmac.compare_digest(echoed, expected):
        return _form(
            request, next_path=next_path, error="The form expired; please try again.", status=403
        )
    sessions = sessions_of(gw)
    client = request.client.host if request.client else "unknown"
    limit = gw.config.server.console.login_attempts_per_minute
    if await sessions.failed_logins(client) >= limit:
        return _form(
            request,
            next_path=next_path,
            error="Too many failed logins from this address; wait a minute.",
            status=429,
        )
    key = str(form.get("key") or "").strip()
    digest = hash_key(key[:MAX_KEY_CHARS])
    try:
        actor = await gw.auth.operator(digest)
    except (AuthenticationError, PermissionDeniedError) as exc:
        await sessions.note_failed_login(client)
        log.info("console login refused", client=client, reason=type(exc).__name__)
        message = (
            "That key is not an admin key."
            if isinstance(exc, PermissionDeniedError)
            else "That key is not valid."
        )
        return _form(request, next_path=next_path, error=message, status=401)
    token, _ = await sessions.open(actor, digest)
    audit(actor, "console.login", actor, client=client)
    secure = secure_cookie(request, gw)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        cookie_name(secure),
        token,
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure,
    )  # no max_age: a browser session's cookie; the server ends it sooner (idle, max age)
    response.delete_cookie(LOGIN_COOKIE, path=f"{PREFIX}/login")
    return response


async def _logout(request: Request, console: Console) -> Response:
    await sessions_of(console.gw).close(session_token(request))
    audit(console.actor, "console.logout", console.actor)
    secure = secure_cookie(request, console.gw)
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(cookie_name(secure), path="/", secure=secure, httponly=True)
    return response


logout = console_view(_logout)
