"""The Jobs pages: a job followed live from queued/running to succeeded without a reload, a
retried job's attempts and upstream error, search by tenant/status/model, cancel from the page,
and the unhappy paths (unknown id, a filter without its tenant)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.support.admin import CHAT, JOB
from tests.support.configs import TENANT_KEYS
from tests.support.console import ConsoleBrowser, assert_audited
from tests.support.mock import MockControl
from tests.support.stack import Stack


@pytest.fixture
def acme(console_stack: Stack) -> Iterator[httpx.Client]:
    """The API as tenant ``acme`` (jobs are a tenant's)."""
    headers = {"authorization": f"Bearer {TENANT_KEYS['acme']}"}
    with httpx.Client(base_url=console_stack.url, headers=headers, timeout=30) as client:
        yield client


def submit(client: httpx.Client, **job: Any) -> str:
    answer = client.post("/v1/jobs", json={**JOB, **job})
    assert answer.status_code == 202, answer.text
    job_id: str = answer.json()["id"]
    return job_id


def wait_ended(client: httpx.Client, job_id: str) -> dict[str, Any]:
    for _ in range(6):
        body: dict[str, Any] = client.get(f"/v1/jobs/{job_id}", params={"wait": 10}).json()
        if body["status"] not in ("queued", "running"):
            return body
    raise AssertionError(f"job {job_id} did not end: {body}")


def test_a_job_page_follows_the_job_to_its_end_without_reloading(
    console: ConsoleBrowser, acme: httpx.Client, mock: MockControl
) -> None:
    mock.settings(chunk_count=10, chunk_delay_ms=500)
    console.login()
    job_id = submit(acme)
    console.goto(f"/ui/jobs/{job_id}")
    page = console.page
    status = page.locator("#job-status")
    assert status.inner_text() in ("queued", "running")
    page.evaluate("() => { window.__sameDocument = 42; }")
    expect(page.locator("[data-sse-status]")).to_have_text(re.compile("live|finished"))
    expect(status).to_have_text("running", timeout=15_000)
    console.screenshot("job-running")
    expect(status).to_have_text("succeeded", timeout=30_000)
    expect(page.locator("[data-sse-status]")).to_have_text("finished")
    assert page.evaluate("() => window.__sameDocument") == 42  # updated in place
    timeline = page.locator("#job-timeline")
    expect(timeline).to_contain_text("Queued")
    expect(timeline).to_contain_text("Started")
    chunks = acme.get(f"/v1/jobs/{job_id}/events").text.count("event: chunk\n")
    assert chunks >= 10
    expect(timeline).to_contain_text(f"{chunks} chunks")
    expect(timeline).to_contain_text("Succeeded")
    expect(page.get_by_role("button", name="Cancel job")).to_have_count(0)
    assert TENANT_KEYS["acme"] not in page.content()
    console.screenshot("job-succeeded")
    console.at_phone_width()
    console.screenshot("job-succeeded-phone")


def test_a_retried_job_shows_both_attempts_their_deployment_and_the_upstream_error(
    console: ConsoleBrowser, acme: httpx.Client, mock: MockControl
) -> None:
    mock.fault(fault="500", model="gpt-4o-mini", times=1)
    job_id = submit(acme)
    assert wait_ended(acme, job_id)["status"] == "succeeded"
    console.login()
    console.goto(f"/ui/jobs/{job_id}")
    timeline = console.page.locator("#job-timeline")
    started = timeline.locator("li.event-started")
    expect(started).to_have_count(2)
    for i in range(2):
        expect(started.nth(i)).to_contain_text(f"attempt {i + 1}")
        expect(started.nth(i)).to_contain_text("openai:gpt-4o-mini")
    retry = timeline.locator("li.event-retry")
    expect(retry).to_have_count(1)
    expect(retry).to_contain_text("upstream 500")
    expect(retry).to_contain_text("failed on: openai:gpt-4o-mini")
    expect(timeline).to_contain_text("2 attempts started")
    expect(console.page.locator("#job-record")).to_contain_text("acme")
    console.screenshot("job-retried")


def test_search_by_tenant_status_and_model_and_by_id(
    console: ConsoleBrowser, acme: httpx.Client
) -> None:
    job_id = submit(acme)
    wait_ended(acme, job_id)
    console.login()
    console.goto("/ui/jobs")
    page = console.page
    page.get_by_label("Tenant").fill("acme")
    page.get_by_label("Status").select_option("succeeded")
    page.get_by_label("Model").fill(CHAT["model"])
    page.get_by_role("button", name="Search").click()
    row = page.locator("tr", has=page.get_by_role("link", name=job_id))
    expect(row).to_contain_text("succeeded")
    expect(row).to_contain_text(CHAT["model"])
    console.screenshot("jobs-search")
    console.at_phone_width()
    console.screenshot("jobs-search-phone")

    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("link", name=job_id)).to_have_count(0)
    page.get_by_label("Model").fill("no-such-model")
    page.get_by_label("Status").select_option("")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("link", name=job_id)).to_have_count(0)

    page.get_by_label("Job id").fill(job_id)
    page.get_by_role("button", name="Open").click()
    page.wait_for_url(re.compile(rf".*/ui/jobs/{re.escape(job_id)}$"))
    expect(page.locator("#job-status")).to_have_text("succeeded")


def test_unknown_ids_and_a_filter_without_tenant_are_refused_by_name(
    console: ConsoleBrowser,
) -> None:
    console.login()
    answer = console.goto("/ui/jobs/job_doesnotexist")
    assert answer.status == 404
    expect(console.page.get_by_role("alert")).to_contain_text("job_doesnotexist")
    console.screenshot("job-404")
    answer = console.goto("/ui/jobs?id=job_missing")
    assert answer.status == 404
    expect(console.page.get_by_role("alert")).to_contain_text("field: id")
    expect(console.page.get_by_label("Job id")).to_have_value("job_missing")
    answer = console.goto("/ui/jobs?status=succeeded")
    assert answer.status == 400
    expect(console.page.get_by_role("alert")).to_contain_text("field: tenant")
    answer = console.goto("/ui/jobs?tenant=acme&status=sleeping")
    assert answer.status == 400
    expect(console.page.get_by_role("alert")).to_contain_text("field: status")
    expect(console.page.get_by_label("Tenant")).to_have_value("acme")


def test_cancel_a_running_job_from_its_page(
    console: ConsoleBrowser, console_stack: Stack, acme: httpx.Client, mock: MockControl
) -> None:
    mock.settings(chunk_count=40, chunk_delay_ms=250)
    job_id = submit(acme)
    console.login()
    console.goto(f"/ui/jobs/{job_id}")
    page = console.page
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel job").click()
    page.wait_for_url(re.compile(rf".*/ui/jobs/{re.escape(job_id)}$"))
    expect(page.locator("#job-status")).to_have_text("cancelled")
    expect(page.locator("#job-timeline")).to_contain_text("Cancelled")
    assert acme.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"
    console.screenshot("job-cancelled")
    assert_audited(console_stack, "job.cancel", job_id)
