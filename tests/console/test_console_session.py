"""Logging in, the session cookie, and what a page without a session gets."""

from __future__ import annotations

import re

from tests.support.admin import ADMIN_KEY
from tests.support.console import ConsoleBrowser


def test_login_sets_a_strict_http_only_cookie_and_never_shows_the_key(
    console: ConsoleBrowser,
) -> None:
    console.goto("/ui/config")
    assert "/ui/login" in console.page.url  # no session: to the login, then back
    console.screenshot("login")
    console.page.get_by_label("Admin key").fill(ADMIN_KEY)
    console.page.get_by_role("button", name="Log in").click()
    console.page.wait_for_url(re.compile(r".*/ui/config$"))
    (cookie,) = [c for c in console.cookies() if c["name"].endswith("anygate_console")]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert ADMIN_KEY not in cookie["value"]
    assert ADMIN_KEY not in console.page.content()
    assert ADMIN_KEY not in console.page.url
    stored = console.page.evaluate("() => JSON.stringify({...localStorage, ...sessionStorage})")
    assert ADMIN_KEY not in stored


def test_a_wrong_key_is_refused_on_the_form(console: ConsoleBrowser) -> None:
    console.goto("/ui/login")
    console.page.get_by_label("Admin key").fill("sk-not-a-key")
    console.page.get_by_role("button", name="Log in").click()
    alert = console.page.get_by_role("alert")
    assert "not valid" in alert.inner_text()
    assert not [c for c in console.cookies() if c["name"].endswith("anygate_console")]
    console.screenshot("login-refused")


def test_logout_ends_the_session(console: ConsoleBrowser) -> None:
    console.login()
    console.page.get_by_role("button", name="Log out").click()
    console.page.wait_for_url(re.compile(r".*/ui/login"))
    console.goto("/ui/")
    assert "/ui/login" in console.page.url
