"""The console's tenant and key forms mapped to the admin API's bodies (tenants_forms)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from anygate.api.admin import NewKey, NewTenant
from anygate.api.console import tenants_forms as forms
from anygate.broker.errors import InvalidRequestError
from anygate.config import TenantQuotas, TenantSettings
from anygate.core.body import validate


def test_empty_fields_are_left_out_of_a_new_tenant() -> None:
    values = forms.form_values(
        {
            "id": " t1 ",
            "weight": "",
            "quotas.rpm": "60",
            "quotas.tpm": "",
            "disabled": "on",
            "auth_mode": "gateway",
            "stray": "x",
            "csrf": "y",
        },
        forms.TENANT_FORM_FIELDS,
    )
    body = forms.new_tenant_body(values)
    assert body == {"id": "t1", "auth_mode": "gateway", "disabled": True, "quotas": {"rpm": "60"}}
    spec = validate(NewTenant, body)
    assert spec.quotas.rpm == 60, "the API's own model parses the typed number"


@pytest.mark.parametrize(
    ("typed", "param"),
    [
        ({"id": "bad id"}, "id"),
        ({"id": "ok", "quotas.rpm": "-5"}, "quotas.rpm"),
        ({"id": "ok", "weight": "0"}, "weight"),
        ({"id": "ok", "quotas.daily_usd": "abc"}, "quotas.daily_usd"),
    ],
)
def test_a_bad_value_names_its_form_field(typed: dict[str, str], param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        validate(NewTenant, forms.new_tenant_body(typed))
    assert caught.value.param == param
    assert forms.field_of(caught.value.param) == param


def test_an_edit_sends_only_what_changed() -> None:
    current = TenantSettings(weight=3, quotas=TenantQuotas(rpm=60, max_queued=9, daily_usd=2.5))
    values = forms.settings_values(current)
    assert values["weight"] == "3"
    assert values["quotas.daily_usd"] == "2.5"
    assert values["disabled"] == ""
    assert forms.tenant_changes(values, current) == {}, "the form as shown changes nothing"
    values["quotas.rpm"] = "120"
    values["quotas.max_queued"] = ""
    values["disabled"] = "on"
    assert forms.tenant_changes(values, current) == {
        "disabled": True,
        "quotas": {"rpm": 120, "max_queued": None},
    }


def test_an_emptied_weight_keeps_the_current_one() -> None:
    current = TenantSettings(weight=7)
    values = {**forms.settings_values(current), "weight": ""}
    assert forms.tenant_changes(values, current) == {}


def test_a_bad_edit_names_the_field() -> None:
    current = TenantSettings()
    values = {**forms.settings_values(current), "quotas.tpm": "0"}
    with pytest.raises(InvalidRequestError) as caught:
        forms.tenant_changes(values, current)
    assert caught.value.param == "quotas.tpm"


def test_a_key_form_becomes_a_new_key_body() -> None:
    body = forms.new_key_body(
        "acme", {"name": "ci", "expires_at": "2031-02-03T04:05", "rpm": "10"}, ["jobs"]
    )
    expected = datetime(2031, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    assert body == {
        "tenant": "acme",
        "name": "ci",
        "scopes": ["jobs"],
        "expires_at": expected,
        "rpm": "10",
    }
    spec = validate(NewKey, body)
    assert spec.rpm == 10
    assert spec.scopes == ("jobs",)


def test_a_key_form_without_scopes_or_with_a_bad_date_is_refused_by_field() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        validate(NewKey, forms.new_key_body("acme", {}, []))
    assert caught.value.param == "scopes"
    with pytest.raises(InvalidRequestError) as caught:
        forms.new_key_body("acme", {"expires_at": "tomorrow"}, ["jobs"])
    assert caught.value.param == "expires_at"
    assert forms.field_of("scopes[0]") == "scopes"


def test_utc_shows_minutes() -> None:
    assert forms.utc(0) == "1970-01-01 00:00 UTC"
