"""The Tenants pages (docs/console.md#tenants): the list with today's usage, a tenant's settings,
usage charts and keys, and the forms that create, edit, disable and delete tenants.

Every change calls the admin API's own function (``anygate.api.admin``): the same validation,
store call and audit line (with ``via="console"``). A form that fails validation comes back
with what the operator typed and the message naming the field, answered 400.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from anygate.api import admin
from anygate.api.console import tenants_forms as forms
from anygate.api.console import tenants_keys, tenants_usage
from anygate.api.console.guard import Console, console_view
from anygate.api.console.render import PREFIX, render
from anygate.broker.admin_queries import AdminQueries, days_between
from anygate.broker.errors import AnygateError, ConflictError, InvalidRequestError
from anygate.broker.tenant_store import tenant_not_found
from anygate.broker.tenants import TenantRecord

VIA = "console"
USAGE_DAYS = (14, 30)
LIST_LIMIT = 100


def _today() -> date:
    return datetime.now(UTC).date()


async def _tenant(console: Console, tenant_id: str) -> TenantRecord:
    record = await console.gw.tenants.get_tenant(tenant_id)
    if record is None:
        raise tenant_not_found(tenant_id)
    return record


def _list_page(
    request: Request,
    console: Console,
    records: list[TenantRecord],
    has_more: bool,
    today: dict[str, tenants_usage.Totals],
    *,
    values: forms.FormValues | None = None,
    error: AnygateError | None = None,
) -> Response:
    return render(
        request,
        "tenants.html",
        session=console.session,
        section="tenants",
        utc=forms.utc,
        status_code=error.status if error else 200,
        tenants=records,
        has_more=has_more,
        today=today,
        **_settings_form(values or {}, error),
        deleted=request.query_params.get("deleted"),
    )


async def _listing(request: Request, console: Console) -> tuple[list[TenantRecord], bool, Any]:
    gw = console.gw
    records, has_more = await gw.tenants.list_tenants(
        after=request.query_params.get("after") or None, limit=LIST_LIMIT
    )
    rows = await AdminQueries(gw.redis, gw.broker.keys).usage([r.id for r in records], [_today()])
    return records, has_more, tenants_usage.per_tenant(rows)


async def _tenants(request: Request, console: Console) -> Response:
    records, has_more, today = await _listing(request, console)
    return _list_page(request, console, records, has_more, today)


async def _create(request: Request, console: Console) -> Response:
    values = forms.form_values(await request.form(), forms.TENANT_FORM_FIELDS)
    try:
        record = await admin.add_tenant(
            console.gw, console.actor, forms.new_tenant_body(values), via=VIA
        )
    except (InvalidRequestError, ConflictError) as exc:  # a bad field, or the id is taken
        records, has_more, today = await _listing(request, console)
        return _list_page(request, console, records, has_more, today, values=values, error=exc)
    return RedirectResponse(f"{PREFIX}/tenants/{record.id}?created=1", status_code=303)


def _usage_days(request: Request) -> int:
    raw = request.query_params.get("days")
    if raw is None:
        return USAGE_DAYS[0]
    if raw not in {str(d) for d in USAGE_DAYS}:
        raise InvalidRequestError(f"days: one of {list(USAGE_DAYS)}", param="days")
    return int(raw)


async def _detail(request: Request, console: Console) -> Response:
    gw = console.gw
    record = await _tenant(console, request.path_params["tenant_id"])
    span = _usage_days(request)
    last = _today()
    days = days_between(last - timedelta(days=span - 1), last)
    rows = await AdminQueries(gw.redis, gw.broker.keys).usage([record.id], days)
    keys = await gw.tenants.list_keys(record.id)
    return render(
        request,
        "tenant.html",
        session=console.session,
        section="tenants",
        utc=forms.utc,
        tenant=record,
        span=span,
        spans=USAGE_DAYS,
        rows=rows,
        per_day=list(reversed(tenants_usage.per_day(rows, days))),
        per_model=tenants_usage.per_model(rows),
        charts=tenants_usage.usage_charts(rows, days),
        keys=sorted(keys, key=lambda k: k.created_at, reverse=True),
        key_form=tenants_keys.key_form_context(),
        quota_fields=forms.QUOTA_FIELDS,
        budget_fields=forms.BUDGET_FIELDS,
        notice=_notice(request),
        now=datetime.now(UTC).timestamp(),
    )


NOTICES = {
    "created": "Tenant created.",
    "saved": "Changes saved.",
    "unchanged": "Nothing changed: the form matched the tenant's settings.",
    "disabled": "Tenant disabled: its keys are refused until it is enabled again.",
    "enabled": "Tenant enabled.",
    "revoked": "Key revoked: requests with it are refused from now on.",
}


def _notice(request: Request) -> str | None:
    return next((text for flag, text in NOTICES.items() if flag in request.query_params), None)


def _settings_form(values: forms.FormValues, error: AnygateError | None) -> dict[str, Any]:
    """What the create and edit forms of a tenant's settings share: what was typed, the
    error and the field it names, and the quota and budget fields to show."""
    return {
        "values": values,
        "error": error,
        "error_field": forms.field_of(error.param) if error else None,
        "quota_fields": forms.QUOTA_FIELDS,
        "budget_fields": forms.BUDGET_FIELDS,
    }


def _edit_page(
    request: Request,
    console: Console,
    record: TenantRecord,
    values: forms.FormValues,
    error: InvalidRequestError | None = None,
) -> Response:
    return render(
        request,
        "tenant_edit.html",
        session=console.session,
        section="tenants",
        utc=forms.utc,
        status_code=error.status if error else 200,
        tenant=record,
        **_settings_form(values, error),
    )


async def _edit_form(request: Request, console: Console) -> Response:
    record = await _tenant(console, request.path_params["tenant_id"])
    return _edit_page(request, console, record, forms.settings_values(record))


async def _edit(request: Request, console: Console) -> Response:
    record = await _tenant(console, request.path_params["tenant_id"])
    values = forms.form_values(await request.form(), forms.TENANT_FORM_FIELDS)
    try:
        changes = forms.tenant_changes(values, record)
        if changes:
            await admin.change_tenant(console.gw, console.actor, record.id, changes, via=VIA)
    except InvalidRequestError as exc:
        return _edit_page(request, console, record, values, exc)
    flag = "saved" if changes else "unchanged"
    return RedirectResponse(f"{PREFIX}/tenants/{record.id}?{flag}=1", status_code=303)


async def _set_disabled(request: Request, console: Console, disabled: bool) -> Response:
    tenant_id = request.path_params["tenant_id"]
    await admin.change_tenant(console.gw, console.actor, tenant_id, {"disabled": disabled}, via=VIA)
    flag = "disabled" if disabled else "enabled"
    return RedirectResponse(f"{PREFIX}/tenants/{tenant_id}?{flag}=1", status_code=303)


async def _disable(request: Request, console: Console) -> Response:
    return await _set_disabled(request, console, True)


async def _enable(request: Request, console: Console) -> Response:
    return await _set_disabled(request, console, False)


async def _delete(request: Request, console: Console) -> Response:
    tenant_id = request.path_params["tenant_id"]
    await admin.remove_tenant(console.gw, console.actor, tenant_id, via=VIA)
    return RedirectResponse(f"{PREFIX}/tenants?deleted={tenant_id}", status_code=303)


ROUTES = [
    Route("/tenants", console_view(_tenants), methods=["GET"]),
    Route("/tenants", console_view(_create), methods=["POST"]),
    Route("/tenants/{tenant_id}", console_view(_detail), methods=["GET"]),
    Route("/tenants/{tenant_id}/edit", console_view(_edit_form), methods=["GET"]),
    Route("/tenants/{tenant_id}/edit", console_view(_edit), methods=["POST"]),
    Route("/tenants/{tenant_id}/disable", console_view(_disable), methods=["POST"]),
    Route("/tenants/{tenant_id}/enable", console_view(_enable), methods=["POST"]),
    Route("/tenants/{tenant_id}/delete", console_view(_delete), methods=["POST"]),
    *tenants_keys.ROUTES,
]
