"""What the console refuses (docs/console.md#security): no page or endpoint without a session,
no change without the session's CSRF token from this origin, a strict CSP on every answer,
sessions that end (idle, max age, logout, a revoked key), and logins that are throttled."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.routing import BaseRoute, Mount, Route

from anygate.api.console import routes
from anygate.api.console.headers import CONTENT_SECURITY_POLICY
from anygate.config import AnygateConfig
from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.admin import ADMIN_KEY, admin_tree
from tests.support.console import ConsoleHttp, assert_no_inline_code, audit_lines
from tests.support.stack import Stack, running_stack

OPEN = {("GET", "/ui/login"), ("POST", "/ui/login"), ("GET", "/ui")}
"""The only console endpoints that answer without a session (with static files); ``/ui``
only redirects to ``/ui/``."""


def console_endpoints() -> list[tuple[str, str]]:
    """Every (method, path) the console routes, path parameters filled with made-up values."""
    found: list[tuple[str, str]] = []

    def walk(items: list[BaseRoute], base: str) -> None:
        for item in items:
            if isinstance(item, Mount):
                if item.path.endswith("/static"):
                    continue
                walk(list(item.routes), base + item.path)
            elif isinstance(item, Route):
                path = re.sub(r"\{rest:path\}", "no/such/page", base + item.path)
                path = re.sub(r"\{[^}]+\}", "x-" + secrets.token_hex(3), path)
                found.extend((method, path) for method in sorted(item.methods or ()))

    walk(routes(AnygateConfig()), "")
    return [e for e in found if e[0] != "HEAD"]


def test_the_route_table_is_read_whole() -> None:
    endpoints = console_endpoints()
    assert ("GET", "/ui/") in endpoints
    assert ("POST", "/ui/logout") in endpoints
    assert len(endpoints) >= 30


@pytest.mark.parametrize("cookie", [None, "forged-" + "a" * 40])
def test_no_console_endpoint_answers_without_a_session(
    console_stack: Stack, cookie: str | None
) -> None:
    cookies = {"anygate_console": cookie} if cookie else {}
    with httpx.Client(base_url=console_stack.url, cookies=cookies, timeout=30) as client:
        for method, path in console_endpoints():
            if (method, path) in OPEN:
                continue
            page = client.request(method, path, headers={"accept": "text/html"})
            fetch = client.request(method, path, headers={"origin": console_stack.url})
            if method == "GET":  # a browser is sent to the login, then back
                assert page.status_code == 303, (method, path, page.status_code)
                assert page.headers["location"].startswith("/ui/login?next=")
            else:
                assert page.status_code == 401, (method, path, page.status_code)
            assert fetch.status_code == 401, (method, path, fetch.status_code)
            assert "csrf" not in page.text.lower()
            for answer in (page, fetch):
                assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def test_changes_need_the_csrf_token_and_this_origin(console_stack: Stack) -> None:
    with ConsoleHttp(console_stack.url) as ui:
        assert ui.login().status_code == 303
        assert ui.post("/ui/logout", csrf="").status_code == 403  # no token
        assert ui.post("/ui/logout", csrf="wrong-" + ui.csrf[6:]).status_code == 403
        foreign = ui.client.post(
            "/ui/logout", data={"csrf": ui.csrf}, headers={"origin": "https://evil.example"}
        )
        assert foreign.status_code == 403
        no_origin = ui.client.post("/ui/logout", data={"csrf": ui.csrf})
        assert no_origin.status_code == 403
        assert ui.page("/ui/").status_code == 200  # none of those logged out
        header = ui.client.post(
            "/ui/logout", headers={"x-csrf-token": ui.csrf, "origin": console_stack.url}
        )
        assert header.status_code == 303
        assert ui.page("/ui/").status_code == 303


def test_every_change_is_refused_without_the_token_or_from_another_origin(
    console_stack: Stack,
) -> None:
    """The guard runs before any view: with a live session, no POST of the route table gets
    past it without the token, with a wrong one, or from another site."""
    changes = [path for method, path in console_endpoints() if method == "POST"]
    changes = [path for path in changes if ("POST", path) not in OPEN]
    assert len(changes) >= 1
    with ConsoleHttp(console_stack.url) as ui:
        ui.login()
        for path in changes:
            assert ui.post(path, csrf="").status_code == 403, path
            assert ui.post(path, csrf=ui.csrf[::-1]).status_code == 403, path
            foreign = ui.client.post(
                path, data={"csrf": ui.csrf}, headers={"origin": "http://127.0.0.2:1"}
            )
            assert foreign.status_code == 403, path
        assert ui.page("/ui/").status_code == 200


def test_the_login_form_has_its_own_csrf_token(console_stack: Stack) -> None:
    with httpx.Client(base_url=console_stack.url, timeout=30) as client:
        forged = client.post(
            "/ui/login",
            data={"csrf": "made-up", "key": ADMIN_KEY},
            headers={"origin": console_stack.url},
        )
        assert forged.status_code == 403
        assert not any(name.endswith("anygate_console") for name in client.cookies)


def test_over_https_the_cookie_is_secure_and_host_only(console_stack: Stack) -> None:
    """Behind a TLS-terminating proxy (``X-Forwarded-Proto: https``): ``Secure`` and the
    ``__Host-`` prefix (this host, path ``/``, never a parent domain's)."""
    proxied = {"x-forwarded-proto": "https"}
    with httpx.Client(base_url=console_stack.url, headers=proxied, timeout=30) as client:
        form = client.get("/ui/login")
        token = re.search(r'name="csrf" value="([^"]*)"', form.text)
        assert token
        # the login form's cookie is Secure too: httpx keeps it off plain http, so it is sent
        # by hand, as the browser on the proxy's https origin would
        login_cookie = form.headers["set-cookie"].split(";")[0]
        assert "secure" in form.headers["set-cookie"].lower()
        answer = client.post(
            "/ui/login",
            data={"csrf": token.group(1), "key": ADMIN_KEY},
            headers={"origin": console_stack.url, "cookie": login_cookie},
        )
    assert answer.status_code == 303
    (cookie,) = [c for c in answer.headers.get_list("set-cookie") if "anygate_console=" in c]
    name, _, attributes = cookie.partition(";")
    assert name.startswith("__Host-anygate_console=")
    flags = {a.strip().lower() for a in attributes.split(";")}
    assert {"secure", "httponly", "samesite=strict", "path=/"} <= flags
    assert not any(f.startswith(("domain=", "max-age=", "expires=")) for f in flags)


def test_pages_carry_the_strict_headers_and_no_inline_code(console_stack: Stack) -> None:
    with ConsoleHttp(console_stack.url) as ui:
        login = ui.page("/ui/login")
        ui.login()
        for answer in (login, ui.page("/ui/"), ui.page("/ui/no/such/page")):
            headers = answer.headers
            assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert "script-src 'self'" in CONTENT_SECURITY_POLICY
            assert "unsafe" not in CONTENT_SECURITY_POLICY
            assert headers["x-frame-options"] == "DENY"
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["cache-control"] == "no-store"
            assert_no_inline_code(answer.text)
        static = ui.client.get("/ui/static/console.js")
        assert static.status_code == 200
        assert "immutable" in static.headers["cache-control"]


# --- sessions that end, logins that are throttled: a stack of their own ----------------------


@pytest.fixture(scope="module")
def short_sessions(
    tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis, mock_server: str
) -> Iterator[Stack]:
    tree = admin_tree(redis_server.url, f"t{secrets.token_hex(5)}", mock_server)
    tree["server"] = {
        "console": {"idle_timeout_s": 2, "max_age_s": 5, "login_attempts_per_minute": 3}
    }
    with running_stack(tmp_path_factory.mktemp("short"), tree) as s:
        yield s


def test_an_idle_session_ends(short_sessions: Stack) -> None:
    with ConsoleHttp(short_sessions.url) as ui:
        ui.login()
        for _ in range(3):  # used within the idle time: it lives on
            time.sleep(1.0)
            assert ui.page("/ui/").status_code == 200
        time.sleep(2.5)
        assert ui.page("/ui/").status_code == 303


def test_a_busy_session_ends_at_its_max_age(short_sessions: Stack) -> None:
    with ConsoleHttp(short_sessions.url) as ui:
        ui.login()
        started = time.monotonic()
        while time.monotonic() - started < 4.5:
            assert ui.page("/ui/").status_code == 200
            time.sleep(0.5)
        time.sleep(1.0)
        assert ui.page("/ui/").status_code == 303


def test_revoking_the_admin_key_ends_its_sessions(short_sessions: Stack) -> None:
    with httpx.Client(
        base_url=short_sessions.url,
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        timeout=30,
    ) as admin:
        made = admin.post("/admin/keys", json={"name": "operator on call"}).json()
        with ConsoleHttp(short_sessions.url) as ui:
            assert ui.login(made["key"]).status_code == 303
            assert ui.page("/ui/").status_code == 200
            assert admin.post(f"/admin/keys/{made['id']}/revoke").status_code == 200
            time.sleep(0.2)
            assert ui.page("/ui/").status_code == 303


def test_failed_logins_are_throttled_per_address(short_sessions: Stack) -> None:
    with ConsoleHttp(short_sessions.url) as ui:
        for _ in range(3):
            assert ui.login("sk-wrong").status_code == 401
        assert ui.login("sk-wrong").status_code == 429
        assert ui.login().status_code == 429  # the right key waits for the minute too
    log = read_log(short_sessions.apis[0][0].log_path)
    assert "sk-wrong" not in log
    assert ADMIN_KEY not in log


def test_login_and_logout_are_in_the_audit_log(console_stack: Stack) -> None:
    with ConsoleHttp(console_stack.url) as ui:
        ui.login()
        ui.post("/ui/logout")
    actions = {e["action"] for e in audit_lines(console_stack, "config-admin-key")}
    assert {"console.login", "console.logout"} <= actions
    assert ADMIN_KEY not in read_log(console_stack.apis[0][0].log_path)


def read_log(path: Path) -> str:
    return path.read_text(encoding="utf-8")
