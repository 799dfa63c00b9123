"""Tenant and key forms as the console's pages post them, turned into the admin API's bodies
(docs/api.md#admin-api), and back: pure, so the mapping is tested without a browser.

Form fields are named as the API names them (``weight``, ``quotas.rpm``), so a validation error's
``param`` names the form field that caused it. An empty field means "not set": left out of a new
tenant, lifted (``null``) when an edit empties a quota. Numbers stay text here: the same pydantic
models as the API's (``NewTenant``, ``TenantSettings``, ``NewKey``) parse and check them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from anygate.broker.errors import InvalidRequestError
from anygate.config import TenantSettings
from anygate.core.body import validate

QUOTA_FIELDS = ("max_in_flight", "rpm", "tpm", "max_queued")
"""Limits that make jobs wait (in flight, per minute) or refuse them (queued)."""
BUDGET_FIELDS = ("daily_tokens", "monthly_tokens", "daily_usd", "monthly_usd")
"""Budgets: past one, new work is refused with a 429 (they live in ``quotas`` too)."""
LIMIT_FIELDS = QUOTA_FIELDS + BUDGET_FIELDS
TEXT_FIELDS = ("weight", "auth_mode", "budget_webhook_url")
FLAG_FIELDS = ("disabled", "provider_batches")
KEY_FIELDS = ("name", "expires_at", "rpm")

FormValues = dict[str, str]
"""What the operator typed, by field name (``quotas.rpm``), stripped; kept to refill a form."""


def form_values(form: Mapping[str, Any], fields: Sequence[str]) -> FormValues:
    """The text fields of a posted form (anything else it carries is ignored)."""
    values: FormValues = {}
    for name in fields:
        raw = form.get(name)
        if isinstance(raw, str):
            values[name] = raw.strip()
    return values


TENANT_FORM_FIELDS = (
    "id",
    *TEXT_FIELDS,
    *FLAG_FIELDS,
    *(f"quotas.{f}" for f in LIMIT_FIELDS),
)


def new_tenant_body(values: FormValues) -> dict[str, Any]:
    """A ``POST /admin/tenants`` body: the fields filled in, nothing for the empty ones."""
    body: dict[str, Any] = {"id": values.get("id", "")}
    for name in TEXT_FIELDS:
        if values.get(name):
            body[name] = values[name]
    for name in FLAG_FIELDS:
        if values.get(name):
            body[name] = True
    quotas = {f: values[f"quotas.{f}"] for f in LIMIT_FIELDS if values.get(f"quotas.{f}")}
    if quotas:
        body["quotas"] = quotas
    return body


def tenant_changes(values: FormValues, current: TenantSettings) -> dict[str, Any]:
    """A partial update from the edit form: only what differs from ``current``. The form shows
    every setting, so an empty quota is a lifted one (``null``), an unchecked box is False and
    an empty webhook URL falls back to the operator's; an empty weight keeps the current one."""
    body: dict[str, Any] = {name: bool(values.get(name)) for name in FLAG_FIELDS}
    body["auth_mode"] = values.get("auth_mode") or current.auth_mode
    body["budget_webhook_url"] = values.get("budget_webhook_url") or None
    body["weight"] = values.get("weight") or current.weight
    body["quotas"] = {f: values.get(f"quotas.{f}") or None for f in LIMIT_FIELDS}
    wanted = validate(TenantSettings, body)
    changes: dict[str, Any] = {}
    for name in (*TEXT_FIELDS, *FLAG_FIELDS):
        if getattr(wanted, name) != getattr(current, name):
            changes[name] = getattr(wanted, name)
    quotas = {
        f: getattr(wanted.quotas, f)
        for f in LIMIT_FIELDS
        if getattr(wanted.quotas, f) != getattr(current.quotas, f)
    }
    if quotas:
        changes["quotas"] = quotas
    return changes


def _text(value: object) -> str:
    if value is None or value is False:
        return ""
    if value is True:
        return "on"
    if isinstance(value, float):
        return f"{value:g}" if abs(value) < 1e15 else repr(value)
    return str(value)


def settings_values(settings: TenantSettings) -> FormValues:
    """The edit form filled in with a tenant's settings."""
    values = {name: _text(getattr(settings, name)) for name in (*TEXT_FIELDS, *FLAG_FIELDS)}
    for f in LIMIT_FIELDS:
        values[f"quotas.{f}"] = _text(getattr(settings.quotas, f))
    return values


def parse_utc(text: str, param: str) -> float:
    """``YYYY-MM-DDTHH:MM`` (what ``<input type="datetime-local">`` posts), read as UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequestError(
            f"{param}: expected a UTC date and time as YYYY-MM-DDTHH:MM", param=param
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def new_key_body(tenant: str, values: FormValues, scopes: Sequence[str]) -> dict[str, Any]:
    """A ``POST /admin/keys`` body for one of ``tenant``'s keys. No scope ticked is sent as
    none at all, which ``NewKey`` refuses, naming ``scopes``."""
    body: dict[str, Any] = {"tenant": tenant, "name": values.get("name", ""), "scopes": scopes}
    if values.get("expires_at"):
        body["expires_at"] = parse_utc(values["expires_at"], "expires_at")
    if values.get("rpm"):
        body["rpm"] = values["rpm"]
    return body


_INDEX = re.compile(r"\[\d+\]$")


def field_of(param: str | None) -> str | None:
    """The form field an error's ``param`` names: ``scopes[0]`` is the scopes field."""
    return _INDEX.sub("", param) if param else None


def utc(seconds: float) -> str:
    """Unix seconds as the pages show moments: UTC, to the minute."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")
