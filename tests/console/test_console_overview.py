"""The Overview: pools, lanes, workers and deployments, kept current over SSE without a reload;
pausing and resuming a pool from the page, audited as the admin API's pause is."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import expect

from tests.support.admin import ADMIN_KEY, JOB
from tests.support.configs import TENANT_KEYS
from tests.support.console import ConsoleBrowser, audit_lines
from tests.support.stack import Stack


@pytest.fixture
def admin(console_stack: Stack) -> Iterator[httpx.Client]:
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=console_stack.url, headers=headers, timeout=30) as client:
        yield client
        client.post("/admin/pools/openai/resume")  # whatever the test did


def paused(admin: httpx.Client, pool: str) -> bool:
    (queue,) = [q for q in admin.get("/admin/queues").json()["data"] if q["id"] == pool]
    return bool(queue["paused"])


def pool_cell(console: ConsoleBrowser, pool: str, column: str) -> object:
    return console.page.locator(f'#ov-pools tr[data-pool="{pool}"] td[data-field="{column}"]')


def test_the_overview_shows_pools_lanes_workers_and_deployments(
    console: ConsoleBrowser, console_stack: Stack
) -> None:
    console.login()
    console.goto("/ui/")
    page = console.page
    expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()
    pools = page.locator("#ov-pools")
    for pool in ("openai", "gemini"):
        expect(pools.locator(f'tr[data-pool="{pool}"] th')).to_have_text(pool)
    for lane in ("openai:interactive", "openai:standard", "openai:batch", "gemini:batch"):
        expect(page.locator(f'#ov-lanes tr[data-lane="{lane}"]')).to_have_count(1)
    workers = page.locator("#ov-workers tbody tr")
    expect(workers).to_have_count(2)  # one worker per pool in the stack
    expect(workers.filter(has_text="not alive")).to_have_count(0)
    expect(workers.first).to_contain_text(re.compile(r"\d+ / \d+"))
    deployments = page.locator("#ov-deployments tbody tr")
    expect(deployments.first).to_contain_text("ok")
    expect(page.locator("#ov-deployments")).to_contain_text("gpt-4o-mini")
    # the stream takes over: the status word says so, and a second sample gives rates
    expect(page.locator("[data-sse-status]")).to_have_text("live")
    expect(page.locator("#ov-errors")).not_to_contain_text("Measuring", timeout=10_000)
    console.screenshot("desktop")
    console.at_phone_width()
    console.screenshot("phone")


def test_queued_jobs_appear_live_while_paused_and_resume_runs_them(
    console: ConsoleBrowser, console_stack: Stack, admin: httpx.Client
) -> None:
    console.login()
    console.goto("/ui/")
    page = console.page
    page.on("dialog", lambda dialog: dialog.accept())  # the pause form's data-confirm
    page.get_by_role("button", name="Pause openai").click()
    page.wait_for_url(re.compile(r".*/ui/\?done=paused&pool=openai$"))
    expect(page.get_by_role("status")).to_have_text("Pool openai paused.")
    expect(page.locator('#ov-pools tr[data-pool="openai"]')).to_contain_text("paused")
    assert paused(admin, "openai")

    page.evaluate("() => { window.__sameDocument = true; }")  # gone if the page reloads
    expect(pool_cell(console, "openai", "queued")).to_have_text("0")
    tenant = {"authorization": f"Bearer {TENANT_KEYS['acme']}"}
    for _ in range(3):
        sent = httpx.post(f"{console_stack.url}/v1/jobs", json=JOB, headers=tenant, timeout=10)
        assert sent.status_code == 202, sent.text
    expect(pool_cell(console, "openai", "queued")).to_have_text("3", timeout=10_000)
    standard = page.locator('#ov-lanes tr[data-lane="openai:standard"] td.num').first
    expect(standard).to_have_text("3")
    assert page.evaluate("() => window.__sameDocument === true"), "the page reloaded"
    console.screenshot("paused-desktop")
    console.at_phone_width()
    console.screenshot("paused-phone")

    page.get_by_role("button", name="Resume openai").click()
    page.wait_for_url(re.compile(r".*/ui/\?done=resumed&pool=openai$"))
    expect(page.locator('#ov-pools tr[data-pool="openai"]')).to_contain_text("running")
    expect(pool_cell(console, "openai", "queued")).to_have_text("0", timeout=15_000)
    assert not paused(admin, "openai")

    audited = [
        (line["action"], line["target"], line.get("via"))
        for line in audit_lines(console_stack)
        if line["action"].startswith("pool.")
    ]
    assert ("pool.pause", "openai", "console") in audited, audited
    assert ("pool.resume", "openai", "console") in audited, audited


def test_an_unknown_pool_gives_the_404_page(console: ConsoleBrowser) -> None:
    console.login()
    console.goto("/ui/")
    # a form the page does not offer, posted as the page would (its CSRF token, same origin)
    with console.page.expect_navigation():
        console.page.evaluate(
            """() => {
              const form = document.querySelector('#ov-controls form');
              form.removeAttribute('data-confirm');
              form.action = '/ui/overview/pools/nowhere/pause';
              form.submit();
            }"""
        )
    expect(console.page.get_by_role("heading", level=1)).to_contain_text("404")
    expect(console.page.get_by_role("alert")).to_contain_text("nowhere")


def test_the_stream_needs_a_session(console_stack: Stack) -> None:
    answer = httpx.get(f"{console_stack.url}/ui/overview/stream", timeout=10)
    assert answer.status_code == 401
    refused = httpx.post(f"{console_stack.url}/ui/overview/pools/openai/pause", timeout=10)
    assert refused.status_code in (401, 403)
