"""The Tenants pages (docs/console.md#tenants) in a browser: create, edit, disable a tenant
through the forms; bad input named by field and kept; a key's secret shown once and working,
then revoked; the usage chart; every change audited with ``via=console`` by the API process."""

from __future__ import annotations

import re
import secrets

import httpx

from tests.support.admin import CHAT
from tests.support.console import ConsoleBrowser, audit_lines
from tests.support.stack import Stack


def accept_dialogs(console: ConsoleBrowser) -> None:
    """The data-confirm questions: answered yes."""
    console.page.on("dialog", lambda dialog: dialog.accept())


def create_tenant(console: ConsoleBrowser, **fields: str) -> str:
    tenant_id = f"ui-{secrets.token_hex(3)}"
    console.goto("/ui/tenants")
    console.page.get_by_label("Tenant id").fill(tenant_id)
    for label, value in fields.items():
        console.page.get_by_label(label, exact=True).fill(value)
    console.page.get_by_role("button", name="Create tenant").click()
    console.page.wait_for_url(re.compile(rf".*/ui/tenants/{tenant_id}\?created=1$"))
    return tenant_id


def test_create_edit_and_disable_a_tenant(
    console: ConsoleBrowser, console_stack: Stack, api: httpx.Client
) -> None:
    console.login()
    accept_dialogs(console)
    tenant_id = create_tenant(console, rpm="60", daily_usd="2.5")
    assert "Tenant created." in console.page.get_by_role("status").inner_text()
    got = api.get(f"/admin/tenants/{tenant_id}").json()
    assert got["quotas"] == {"rpm": 60, "daily_usd": 2.5}
    assert got["disabled"] is False

    console.page.get_by_role("link", name="Edit settings").click()
    assert console.page.get_by_label("rpm", exact=True).input_value() == "60"
    console.page.get_by_label("rpm", exact=True).fill("120")
    console.page.get_by_label("daily_usd", exact=True).fill("")
    console.page.get_by_role("button", name="Save changes").click()
    console.page.wait_for_url(re.compile(r".*\?saved=1$"))
    got = api.get(f"/admin/tenants/{tenant_id}").json()
    assert got["quotas"] == {"rpm": 120}, "changed, and the emptied budget lifted"

    console.page.get_by_role("button", name="Disable tenant").click()
    console.page.wait_for_url(re.compile(r".*\?disabled=1$"))
    assert api.get(f"/admin/tenants/{tenant_id}").json()["disabled"] is True
    assert "disabled" in console.page.get_by_role("heading", level=1).inner_text()
    console.screenshot("tenant-disabled")

    console.goto("/ui/tenants")
    row = console.page.get_by_role("row").filter(has_text=tenant_id)
    assert "disabled" in row.inner_text()
    assert "120" in row.inner_text()
    console.screenshot("tenants-desktop")
    console.at_phone_width()
    console.screenshot("tenants-phone")

    console.goto(f"/ui/tenants/{tenant_id}")
    console.page.get_by_role("button", name="Enable tenant").click()
    console.page.wait_for_url(re.compile(r".*\?enabled=1$"))
    assert api.get(f"/admin/tenants/{tenant_id}").json()["disabled"] is False
    console.page.get_by_role("button", name="Delete tenant").click()
    console.page.wait_for_url(re.compile(rf".*/ui/tenants\?deleted={tenant_id}$"))
    assert api.get(f"/admin/tenants/{tenant_id}").status_code == 404
    assert tenant_id in console.page.get_by_role("status").inner_text()

    actions = [e["action"] for e in audit_lines(console_stack, tenant_id)]
    assert actions == [
        "tenant.create",
        "tenant.update",
        "tenant.update",
        "tenant.update",
        "tenant.delete",
    ], actions
    assert all(e["via"] == "console" for e in audit_lines(console_stack, tenant_id))
    assert all(e["actor"] for e in audit_lines(console_stack, tenant_id))


def test_bad_input_names_the_field_and_keeps_what_was_typed(
    console: ConsoleBrowser, api: httpx.Client
) -> None:
    console.login()
    console.goto("/ui/tenants")
    page = console.page
    page.get_by_label("Tenant id").fill("has space")
    page.get_by_label("tpm", exact=True).fill("5000")
    with page.expect_response(re.compile(r".*/ui/tenants$")) as answer:
        page.get_by_role("button", name="Create tenant").click()
    assert answer.value.status == 400
    alert = page.get_by_role("alert").inner_text()
    assert "id" in alert
    assert page.get_by_label("Tenant id").get_attribute("aria-invalid") == "true"
    assert page.get_by_label("Tenant id").input_value() == "has space"
    assert page.get_by_label("tpm", exact=True).input_value() == "5000"

    good_id = f"ui-{secrets.token_hex(3)}"
    page.get_by_label("Tenant id").fill(good_id)
    page.get_by_label("rpm", exact=True).fill("-5")
    with page.expect_response(re.compile(r".*/ui/tenants$")) as answer:
        page.get_by_role("button", name="Create tenant").click()
    assert answer.value.status == 400
    assert "quotas.rpm" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("rpm", exact=True).get_attribute("aria-invalid") == "true"
    assert page.get_by_label("rpm", exact=True).input_value() == "-5"
    assert page.get_by_label("Tenant id").input_value() == good_id
    console.screenshot("tenant-bad-input")
    assert api.get(f"/admin/tenants/{good_id}").status_code == 404, "nothing was created"

    page.get_by_label("Tenant id").fill("acme")  # a config tenant's: taken
    page.get_by_label("rpm", exact=True).fill("")
    with page.expect_response(re.compile(r".*/ui/tenants$")) as answer:
        page.get_by_role("button", name="Create tenant").click()
    assert answer.value.status == 409
    assert "is taken" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("Tenant id").get_attribute("aria-invalid") == "true"

    answer = console.goto("/ui/tenants/nobody-here")
    assert answer.status == 404
    assert "tenant_not_found" in page.content()


def test_a_new_key_is_shown_once_works_and_is_revoked(
    console: ConsoleBrowser, console_stack: Stack, api: httpx.Client
) -> None:
    console.login()
    accept_dialogs(console)
    tenant_id = create_tenant(console)
    page = console.page
    page.get_by_label("Key name").fill("ci")
    page.get_by_label("batches").uncheck()
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-key-secret").inner_text().strip()
    assert secret.startswith("ag-")
    assert "only time the key is shown" in page.content()
    assert page.get_by_role("button", name="Copy key").is_visible()
    console.screenshot("key-created")
    (key,) = api.get("/admin/keys", params={"tenant": tenant_id}).json()["data"]
    assert key["name"] == "ci"
    assert key["scopes"] == ["inference", "jobs"]

    with httpx.Client(
        base_url=console_stack.url, headers={"authorization": f"Bearer {secret}"}, timeout=30
    ) as client:
        assert client.get("/v1/jobs").status_code == 200
        done = client.post("/v1/chat/completions", json=CHAT)
        assert done.status_code == 200, done.text

        answer = page.reload()  # posts the form again: refused, no second key, no secret
        assert answer is not None
        assert answer.status == 409
        assert secret not in page.content()
        assert len(api.get("/admin/keys", params={"tenant": tenant_id}).json()["data"]) == 1
        console.goto(f"/ui/tenants/{tenant_id}")
        assert secret not in page.content()
        assert key["redacted_value"] in page.content()

        # the job that ran shows in the usage chart (a canvas drawn by uPlot) and table
        page.locator("#usage-tokens-chart canvas").first.wait_for()
        assert "gpt-4o-mini" in page.get_by_role("table", name=re.compile("Per model")).inner_text()
        console.screenshot("tenant-desktop")
        console.at_phone_width()
        console.screenshot("tenant-phone")

        page.get_by_role("button", name=f"Revoke key {key['id']}").click()
        page.wait_for_url(re.compile(r".*\?revoked=1"))
        assert "revoked" in page.get_by_role("row").filter(has_text=key["id"]).inner_text()
        assert client.get("/v1/jobs").status_code == 401
    actions = [(e["action"], e.get("via")) for e in audit_lines(console_stack, key["id"])]
    assert actions == [("key.create", "console"), ("key.revoke", "console")]


def test_a_key_form_with_a_past_expiry_names_the_field(console: ConsoleBrowser) -> None:
    console.login()
    tenant_id = create_tenant(console)
    page = console.page
    page.get_by_label("Key name").fill("late")
    page.get_by_label("Expires at (UTC, optional)").fill("2001-01-01T00:00")
    with page.expect_response(re.compile(rf".*/ui/tenants/{tenant_id}/keys$")) as answer:
        page.get_by_role("button", name="Create key").click()
    assert answer.value.status == 400
    assert "expires_at: must be in the future" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("Key name").input_value() == "late"
    assert page.get_by_label("Expires at (UTC, optional)").get_attribute("aria-invalid") == "true"
