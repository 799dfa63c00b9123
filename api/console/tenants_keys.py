"""A tenant's API keys in the console (docs/console.md#tenants): create one, revoke one.

A new key's secret is shown once, on the page that answers the form, and kept nowhere: not in
Redis (only its hash, as the admin API stores it), not in the session, not in a later page.
The form carries a one-time token so that posting it again (a reload of the answer page) cannot
make a second key and show a second secret: the repeat is refused.
"""

from __future__ import annotations

import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from anygate.api import admin
from anygate.api.console import tenants_forms as forms
from anygate.api.console.guard import Console, console_view
from anygate.api.console.render import PREFIX, render
from anygate.api.console.sessions import token_digest
from anygate.broker.connection import awaited
from anygate.broker.errors import ConflictError, InvalidRequestError, NotFoundError
from anygate.broker.tenant_store import tenant_not_found
from anygate.broker.tenants import TENANT_SCOPES

VIA = "console"
ONCE_FIELD = "once"
ONCE_TTL_S = 86_400
"""How long a used form token is remembered: longer than anyone keeps a page open."""


def key_form_context(
    values: forms.FormValues | None = None,
    scopes: tuple[str, ...] = TENANT_SCOPES,
    error: InvalidRequestError | None = None,
) -> dict[str, Any]:
    """What the new-key form needs: a fresh one-time token, the scopes, and on a refused post
    what was typed and the error."""
    return {
        "once": secrets.token_urlsafe(18),
        "all_scopes": TENANT_SCOPES,
        "scopes": scopes,
        "values": values or {},
        "error": error,
        "error_field": forms.field_of(error.param) if error else None,
    }


async def _first_use(console: Console, token: str) -> bool:
    """Whether this form token is posted for the first time (only its hash is kept)."""
    digest = token_digest(token)
    key = console.gw.broker.keys.console_form_posted(digest)
    return bool(await awaited(console.gw.redis.set(key, "1", nx=True, ex=ONCE_TTL_S)))


async def _create_key(request: Request, console: Console) -> Response:
    tenant_id = request.path_params["tenant_id"]
    if await console.gw.tenants.get_tenant(tenant_id) is None:
        raise tenant_not_found(tenant_id)
    form = await request.form()
    values = forms.form_values(form, forms.KEY_FIELDS)
    scopes = tuple(s for s in form.getlist("scopes") if isinstance(s, str))
    token = form.get(ONCE_FIELD)
    if not isinstance(token, str) or not token:
        raise InvalidRequestError("once: the form's one-time token is missing", param="once")
    try:
        body = forms.new_key_body(tenant_id, values, scopes)
        if not await _first_use(console, token):
            raise ConflictError(
                "This form was already posted: its key was created and its secret shown once. "
                "It cannot be shown again; create another key if it was lost."
            )
        record, secret = await admin.add_key(console.gw, console.actor, body, via=VIA)
    except InvalidRequestError as exc:
        return render(
            request,
            "tenant_key_new.html",
            session=console.session,
            section="tenants",
            utc=forms.utc,
            status_code=exc.status,
            tenant_id=tenant_id,
            key_form=key_form_context(values, scopes, exc),
        )
    return render(
        request,
        "tenant_key_created.html",
        session=console.session,
        section="tenants",
        utc=forms.utc,
        status_code=201,
        key=record,
        secret=secret,
    )


async def _revoke_key(request: Request, console: Console) -> Response:
    tenant_id, key_id = request.path_params["tenant_id"], request.path_params["key_id"]
    record = await console.gw.tenants.get_key(key_id)
    if record is None or record.tenant != tenant_id:
        raise NotFoundError(
            f"No API key '{key_id}' for tenant '{tenant_id}'.",
            param="key_id",
            code="api_key_not_found",
        )
    await admin.cancel_key(console.gw, console.actor, key_id, via=VIA)
    return RedirectResponse(f"{PREFIX}/tenants/{tenant_id}?revoked=1#keys", status_code=303)


ROUTES = [
    Route("/tenants/{tenant_id}/keys", console_view(_create_key), methods=["POST"]),
    Route("/tenants/{tenant_id}/keys/{key_id}/revoke", console_view(_revoke_key), methods=["POST"]),
]
