"""The Batches pages: a batch's progress followed live to completed without a reload, its output
file downloaded through the console's link, a slow batch cancelled from its page, the listing
across tenants and per tenant, and the unhappy paths."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import orjson
from playwright.sync_api import expect

from tests.support.batches import batch_line, jsonl, openai_sdk
from tests.support.console import ConsoleBrowser, assert_audited
from tests.support.mock import MockControl
from tests.support.stack import Stack


def create_batch(sdk: openai.OpenAI, lines: int) -> str:
    uploaded = sdk.files.create(
        file=("r.jsonl", jsonl([batch_line(i, "gpt-4o-mini") for i in range(lines)])),
        purpose="batch",
    )
    batch = sdk.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    return batch.id


def until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_batch_page_follows_progress_and_downloads_the_output(
    console: ConsoleBrowser, console_stack: Stack, mock: MockControl
) -> None:
    mock.settings(latency_ms=1500)
    sdk = openai_sdk(console_stack)
    console.login()
    batch_id = create_batch(sdk, 12)
    console.goto(f"/ui/batches/{batch_id}")
    page = console.page
    status = page.locator("#batch-status")
    assert status.inner_text() in ("validating", "in_progress")
    done_at_first = int(page.locator("#batch-done").inner_text().split("/")[0])
    assert done_at_first < 12
    page.evaluate("() => { window.__sameDocument = 42; }")
    expect(page.locator("[data-sse-status]")).to_have_text("live")
    console.screenshot("batch-in-progress")
    expect(status).to_have_text("completed", timeout=60_000)
    expect(page.locator("#batch-done")).to_have_text("12/12")
    expect(page.locator("#batch-progress")).to_have_attribute("value", "12")
    expect(page.locator("#batch-completed")).to_have_text("12")
    assert page.evaluate("() => window.__sameDocument") == 42  # updated in place
    link = page.get_by_role("link", name=re.compile("download .*_output.jsonl"))
    with page.expect_download() as download:
        link.click()
    saved = download.value
    assert saved.suggested_filename == f"{batch_id}_output.jsonl"
    raw = Path(saved.path()).read_bytes()
    lines = [orjson.loads(line) for line in raw.splitlines() if line]
    assert sorted(line["custom_id"] for line in lines) == sorted(f"req-{i}" for i in range(12))
    assert all(line["response"]["status_code"] == 200 for line in lines)
    expect(page.get_by_role("button", name="Cancel batch")).to_have_count(0)
    console.screenshot("batch-completed")
    console.at_phone_width()
    console.screenshot("batch-completed-phone")

    console.at_phone_width()
    console.goto("/ui/batches")
    row = page.locator("tr", has=page.get_by_role("link", name=batch_id))
    expect(row.first).to_contain_text("completed")
    expect(row.first).to_contain_text("12/12")
    console.screenshot("batches-phone")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_label("Tenant").fill("acme")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tr", has=page.get_by_role("link", name=batch_id))).to_have_count(1)
    console.screenshot("batches-acme")


def test_cancel_a_slow_batch_from_its_page(
    console: ConsoleBrowser, console_stack: Stack, mock: MockControl
) -> None:
    mock.settings(latency_ms=1500)
    sdk = openai_sdk(console_stack)
    batch_id = create_batch(sdk, 60)
    until(lambda: sdk.batches.retrieve(batch_id).status == "in_progress", "in_progress")
    console.login()
    console.goto(f"/ui/batches/{batch_id}")
    page = console.page
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel batch").click()
    page.wait_for_url(re.compile(rf".*/ui/batches/{batch_id}$"))
    expect(page.locator("#batch-status")).to_have_text(re.compile("cancelling|cancelled"))
    assert sdk.batches.retrieve(batch_id).status in ("cancelling", "cancelled")
    console.screenshot("batch-cancelling")
    until(lambda: sdk.batches.retrieve(batch_id).status == "cancelled", "cancelled", 60)
    expect(page.locator("#batch-status")).to_have_text("cancelled", timeout=15_000)
    counts = sdk.batches.retrieve(batch_id).request_counts
    assert counts is not None
    assert counts.completed < 60, "lines not yet run when cancelled never ran"
    assert_audited(console_stack, "batch.cancel", batch_id)


def test_unknown_batches_and_a_bad_tenant_are_refused_by_name(console: ConsoleBrowser) -> None:
    console.login()
    answer = console.goto("/ui/batches/batch_doesnotexist")
    assert answer.status == 404
    expect(console.page.get_by_role("alert")).to_contain_text("batch_doesnotexist")
    assert console.goto("/ui/batches/batch_doesnotexist/output").status == 404
    answer = console.goto("/ui/batches?tenant=not%20a%20tenant")
    assert answer.status == 400
    expect(console.page.get_by_role("alert")).to_contain_text("field: tenant")
    console.screenshot("batches-bad-tenant")
