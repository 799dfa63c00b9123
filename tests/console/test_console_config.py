"""The Config page: the effective configuration with every secret masked, and checking a pasted
configuration (valid, invalid with the field named, oversize refused), nothing saved."""

from __future__ import annotations

import yaml
from playwright.sync_api import expect

from anygate.api.console.config_view import MAX_PASTE_BYTES
from tests.console.conftest import ENCRYPTION_KEY, ENCRYPTION_KEY_ENV, PROVIDER_KEY
from tests.support.admin import ADMIN_KEY
from tests.support.configs import MOCK_KEY_ENV, TENANT_KEYS, hash_key
from tests.support.console import ConsoleBrowser
from tests.support.stack import Stack

VALID = {
    "providers": {"openai": {"kind": "openai", "api_key": "env:SOME_UNSET_VARIABLE"}},
    "models": {"fast": {"deployments": [{"provider": "openai", "model": "gpt-4o-mini"}]}},
    "tenants": [{"id": "acme"}],
}


def check(console: ConsoleBrowser, text: str) -> None:
    console.page.get_by_label("Configuration (YAML").fill(text)
    with console.page.expect_navigation():
        console.page.get_by_role("button", name="Check").click()


def test_the_effective_config_is_shown_with_every_secret_masked(
    console: ConsoleBrowser, console_stack: Stack
) -> None:
    console.login()
    answer = console.goto("/ui/config")
    assert answer.status == 200
    shown = console.page.locator("#effective-config").inner_text()
    assert "kind: openai" in shown
    assert console_stack.tree["redis"]["namespace"] in shown
    assert "api_key: ••••••" in shown
    assert "encryption_key: ••••••" in shown
    html = console.page.content()
    secrets = [ADMIN_KEY, hash_key(ADMIN_KEY), MOCK_KEY_ENV, PROVIDER_KEY]
    secrets += [ENCRYPTION_KEY, ENCRYPTION_KEY_ENV]
    secrets += [*TENANT_KEYS.values(), *(hash_key(k) for k in TENANT_KEYS.values())]
    for secret in secrets:
        assert secret not in html, f"{secret!r} is on the page"
    expect(console.page.get_by_text("Nothing is saved")).to_be_visible()
    console.screenshot("desktop")
    console.at_phone_width()
    console.screenshot("phone")


def test_a_valid_paste_is_summarised(console: ConsoleBrowser) -> None:
    console.login()
    console.goto("/ui/config")
    check(console, yaml.safe_dump(VALID))
    result = console.page.locator("#check-result")
    expect(result).to_have_attribute("role", "status")
    expect(result).to_contain_text("valid")
    expect(result).to_contain_text("Providers (1): openai (openai)")
    expect(result).to_contain_text("Models (1): fast")
    expect(result).to_contain_text("Tenants in the file (1): acme")
    console.screenshot("valid")


def test_an_invalid_field_is_named_and_the_paste_kept(console: ConsoleBrowser) -> None:
    console.login()
    console.goto("/ui/config")
    broken = {**VALID, "queue": {"max_attempts": "many"}}
    text = yaml.safe_dump(broken)
    check(console, text)
    alert = console.page.get_by_role("alert")
    expect(alert).to_contain_text("invalid")
    expect(alert).to_contain_text("queue.max_attempts")
    expect(console.page.get_by_label("Configuration (YAML")).to_have_value(text)
    console.screenshot("invalid")

    check(console, "models:\n  fast: [unclosed\n")
    expect(console.page.get_by_role("alert")).to_contain_text("(yaml): not valid YAML")

    literal = "providers:\n  openai: {kind: openai, api_key: sk-pasted-literal-42}\n"
    check(console, literal)
    alert = console.page.get_by_role("alert")
    expect(alert).to_contain_text("providers.openai.api_key")
    expect(alert).not_to_contain_text("sk-pasted-literal-42")


def test_an_oversize_paste_is_refused(console: ConsoleBrowser) -> None:
    console.login()
    console.goto("/ui/config")
    check(console, "#" * (MAX_PASTE_BYTES + 10))
    alert = console.page.get_by_role("alert")
    expect(alert).to_contain_text("(paste): too large: at most 256 KiB is checked")
    expect(console.page.get_by_label("Configuration (YAML")).to_have_value("")
