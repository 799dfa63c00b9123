"""The console's tests: a whole stack (API, workers for both pools, the control plane, the mock)
with an operator key, Debian's chromium driven by Playwright, and screenshots of each page
written to ``$ANYGATE_TEST_ARTIFACTS/console`` (default ``.artifacts/console``).

Browser tests are plain (not async) functions: Playwright's sync API runs its own loop.
Chromium comes from ``.ci/setup`` (the Debian package); without it these tests skip, except
where ``ANYGATE_REQUIRE_BROWSER=1`` (CI sets it), where they fail.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import sync_playwright

from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.admin import ADMIN_KEY, admin_tree
from tests.support.configs import MOCK_KEY_ENV
from tests.support.console import CHROMIUM_ARGS, ConsoleBrowser
from tests.support.stack import Stack, running_stack

PROVIDER_KEY = "sk-provider-" + secrets.token_hex(16)
"""The provider key the stack's workers hold: no page may show it."""
ENCRYPTION_KEY_ENV = "ANYGATE_TEST_ENCRYPTION_KEY"
ENCRYPTION_KEY = base64.b64encode(secrets.token_bytes(32)).decode()
ARTIFACTS = Path(os.environ.get("ANYGATE_TEST_ARTIFACTS") or ".artifacts") / "console"


@pytest.fixture(scope="module")
def console_stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis, mock_server: str
) -> Iterator[Stack]:
    """API + a worker per pool + the control plane (batches, dead-letter roll-ups) against the
    mock, with the operator key ``tests.support.admin.ADMIN_KEY``; shared by a module."""
    tree = admin_tree(redis_server.url, f"t{secrets.token_hex(5)}", mock_server)
    tree["security"] = {"encryption_key": f"env:{ENCRYPTION_KEY_ENV}"}
    env = {MOCK_KEY_ENV: PROVIDER_KEY, ENCRYPTION_KEY_ENV: ENCRYPTION_KEY}
    folder = tmp_path_factory.mktemp("console")
    with running_stack(folder, tree, ["openai", "gemini"], env=env) as s:
        s.start_control()
        yield s


def chromium_path() -> str | None:
    return os.environ.get("ANYGATE_CHROMIUM") or shutil.which("chromium")


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """One headless chromium per module (Playwright's Browser). Not per session: while
    Playwright's sync API is open, its loop counts as running in this thread, and the async
    tests of later modules could not start theirs."""
    path = chromium_path()
    if path is None:
        message = "no chromium: apt-get install chromium (.ci/setup does)"
        if os.environ.get("ANYGATE_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def console(
    chromium: object, console_stack: Stack, request: pytest.FixtureRequest
) -> Iterator[ConsoleBrowser]:
    """A fresh browser context (no cookies) on the console, not yet logged in; it fails the
    test on any console error or CSP violation the page reported."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with ConsoleBrowser.open(chromium, console_stack.url, ARTIFACTS, request.node.name) as c:
        yield c


@pytest.fixture
def api(console_stack: Stack) -> Iterator[httpx.Client]:
    """The admin API of the console's stack, as the operator: to set up what a page shows."""
    with httpx.Client(
        base_url=console_stack.url, headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
    ) as client:
        yield client
