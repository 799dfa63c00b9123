"""Driving the console in a real browser (tests/console/): a Playwright context per test,
logging in through the form, screenshots as artifacts, and the page's own complaints (console
errors, CSP violations, failed requests to the console) collected so a test fails on them."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.support.admin import ADMIN_KEY
from tests.support.stack import Stack

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
"""What this machine's chromium needs headless as root, and nothing reaching past 127.0.0.1."""

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@dataclass
class ConsoleBrowser:
    page: Any
    """Playwright's Page (typed loosely: playwright is a test extra)."""
    base_url: str
    artifacts: Path
    test_name: str
    problems: list[str] = field(default_factory=list)

    @classmethod
    @contextlib.contextmanager
    def open(
        cls, browser: Any, base_url: str, artifacts: Path, test_name: str
    ) -> Iterator[ConsoleBrowser]:
        context = browser.new_context(base_url=base_url, viewport=DESKTOP)
        context.set_default_timeout(15_000)
        page = context.new_page()
        c = cls(page, base_url, artifacts, re.sub(r"[^\w.-]+", "_", test_name))
        page.on("console", c._on_console)
        page.on("pageerror", lambda exc: c.problems.append(f"page error: {exc}"))
        page.on("response", c._on_response)
        try:
            yield c
        finally:
            context.close()
        assert not c.problems, "the console page complained:\n" + "\n".join(c.problems)

    def _on_console(self, message: Any) -> None:
        # a page answered 4xx is logged as "Failed to load resource": the test checks the
        # status it expects; a subresource's is caught by _on_response
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.problems.append(f"console error: {message.text}")

    def _on_response(self, response: Any) -> None:
        if response.request.resource_type != "document" and response.status >= 400:
            self.problems.append(f"{response.status} for {response.url}")

    def goto(self, path: str) -> Any:
        return self.page.goto(f"{self.base_url}{path}")

    def login(self, key: str = ADMIN_KEY) -> None:
        self.goto("/ui/login")
        self.page.get_by_label("Admin key").fill(key)
        self.page.get_by_role("button", name="Log in").click()
        self.page.wait_for_url(re.compile(r".*/ui/(?!login).*"))

    def screenshot(self, name: str, *, full_page: bool = True) -> Path:
        path = self.artifacts / f"{self.test_name}-{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def at_phone_width(self) -> None:
        self.page.set_viewport_size(PHONE)

    def cookies(self) -> list[dict[str, Any]]:
        return list(self.page.context.cookies())


CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')
LOGIN_CSRF = re.compile(r'<input type="hidden" name="csrf" value="([^"]*)">')


class ConsoleHttp:
    """The console without a browser (httpx, cookies kept): for what a browser would hide,
    such as a post without the CSRF token, or a crawl of every page."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.client = httpx.Client(base_url=base_url, timeout=30, follow_redirects=False)
        self.csrf = ""

    def __enter__(self) -> ConsoleHttp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    @property
    def origin(self) -> dict[str, str]:
        return {"origin": self.base_url}

    def login(self, key: str = ADMIN_KEY) -> httpx.Response:
        form = self.client.get("/ui/login")
        match = LOGIN_CSRF.search(form.text)
        assert match, form.text[:500]
        answer = self.client.post(
            "/ui/login",
            data={"csrf": match.group(1), "key": key, "next": "/ui/"},
            headers=self.origin,
        )
        if answer.status_code == 303:
            page = self.page("/ui/")
            found = CSRF_META.search(page.text)
            assert found, page.text[:500]
            self.csrf = found.group(1)
        return answer

    def page(self, path: str) -> httpx.Response:
        return self.client.get(path, headers={"accept": "text/html"})

    def post(
        self, path: str, data: dict[str, Any] | None = None, *, csrf: str | None = None
    ) -> httpx.Response:
        token = self.csrf if csrf is None else csrf
        fields = {**(data or {}), **({"csrf": token} if token else {})}
        return self.client.post(path, data=fields, headers=self.origin)


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I)
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)
STYLE_ATTRIBUTE = re.compile(r"<[^>]+\sstyle\s*=", re.I)


def assert_no_inline_code(html: str) -> None:
    assert not INLINE_SCRIPT.search(html), INLINE_SCRIPT.search(html)
    assert not INLINE_HANDLER.search(html), INLINE_HANDLER.search(html)
    assert not STYLE_ATTRIBUTE.search(html), STYLE_ATTRIBUTE.search(html)
    assert "javascript:" not in html.lower()


def audit_lines(stack: Stack, target: str | None = None) -> list[dict[str, Any]]:
    """The ``admin action`` lines (JSON) the stack's first API process logged, about
    ``target`` when given: the audit log a console change must write."""
    log = stack.apis[0][0].log_path.read_text(encoding="utf-8", errors="replace")
    found = []
    for line in log.splitlines():
        if not line.startswith("{") or "admin action" not in line:
            continue
        event = orjson.loads(line)
        if event.get("event") == "admin action" and target in (None, event.get("target")):
            found.append(event)
    return found


def assert_audited(stack: Stack, action: str, target: str) -> None:
    """The admin API's audit line, written by a change made in the console."""
    lines = audit_lines(stack, target)
    assert any(e["action"] == action and e.get("via") == "console" for e in lines), lines
