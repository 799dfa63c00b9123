"""The Dead letters page (docs/console.md#dead-letters) in a browser: a job that failed for good
is listed and inspected, requeued from the page, leaves the list and runs again; the requeue is
audited with ``via=console``."""

from __future__ import annotations

import re
import secrets
from typing import Any

import httpx

from tests.support.admin import JOB
from tests.support.console import ConsoleBrowser, audit_lines
from tests.support.mock import MockControl
from tests.support.stack import Stack


def tenant_client(stack: Stack, api: httpx.Client) -> httpx.Client:
    tenant = f"dl-{secrets.token_hex(3)}"
    assert api.post("/admin/tenants", json={"id": tenant}).status_code == 201
    key = api.post("/admin/keys", json={"tenant": tenant}).json()["key"]
    return httpx.Client(base_url=stack.url, headers={"authorization": f"Bearer {key}"}, timeout=30)


def dead_job(client: httpx.Client, mock: MockControl) -> dict[str, Any]:
    """A job that fails for good: the provider answers 500 to each of its three attempts."""
    mock.fault(fault="500", model="gpt-4o-mini", times=3)
    job = client.post("/v1/jobs", json=JOB).json()
    done: dict[str, Any] = client.get(
        f"/v1/jobs/{job['id']}", params={"wait": 20}, timeout=30
    ).json()
    assert done["status"] == "failed", done
    return done


def test_a_dead_letter_is_listed_inspected_and_requeued(
    console: ConsoleBrowser, console_stack: Stack, api: httpx.Client, mock: MockControl
) -> None:
    with tenant_client(console_stack, api) as client:
        dead = dead_job(client, mock)
        console.login()
        console.page.on("dialog", lambda dialog: dialog.accept())
        console.goto("/ui/dead-letters?pool=openai")
        page = console.page
        row = page.get_by_role("row").filter(has_text=dead["id"])
        assert "yes" in row.inner_text(), "requeueable"
        assert "gpt-4o-mini" in row.inner_text()
        console.screenshot("dead-letters-desktop")
        console.at_phone_width()
        console.screenshot("dead-letters-phone")
        page.set_viewport_size({"width": 1280, "height": 900})

        page.get_by_role("link", name=dead["id"]).click()
        page.wait_for_url(re.compile(rf".*/ui/dead-letters/openai/{dead['id']}$"))
        failure = page.get_by_role("table", name="What failed").inner_text()
        assert dead["error"]["message"][:40] in failure
        assert "3" in failure  # attempts
        assert (
            page.get_by_role("link", name=re.compile("full page")).get_attribute("href")
            == f"/ui/jobs/{dead['id']}"
        )
        console.screenshot("dead-letter")

        console.goto("/ui/dead-letters?pool=openai")
        page.get_by_label(f"Select {dead['id']}").check()
        page.get_by_role("button", name="Requeue selected").click()
        requeued = page.get_by_role("table", name=re.compile("Requeued")).inner_text()
        assert dead["id"] in requeued
        console.screenshot("requeued")

        done = client.get(f"/v1/jobs/{dead['id']}", params={"wait": 20}, timeout=30).json()
        assert done["status"] == "succeeded", done
        assert done["attempts"] == 1

        console.goto("/ui/dead-letters?pool=openai")
        assert dead["id"] not in page.content(), "it left the dead letters"

        # requeued again: no longer dead, so skipped with the reason
        console.goto(f"/ui/dead-letters/openai/{dead['id']}")
        assert "not a dead letter now" in page.content()
    audit = [e for e in audit_lines(console_stack) if e["action"] == "dead_letters.requeue"]
    assert any(e["via"] == "console" and e["jobs"] == 1 for e in audit), audit


def test_requeueing_nothing_or_an_unknown_pool_is_refused(
    console: ConsoleBrowser, api: httpx.Client
) -> None:
    console.login()
    answer = console.goto("/ui/dead-letters?pool=nowhere")
    assert answer.status == 404
    assert "pool_not_found" in console.page.content()
    answer = console.goto("/ui/dead-letters/openai/job_nothing")
    assert answer.status == 404
    console.goto("/ui/dead-letters?pool=gemini")
    assert "No dead letters in pool gemini" in console.page.content()
    # a post of no selection, as a form without ticked boxes sends it
    csrf = console.page.locator('meta[name="csrf-token"]').get_attribute("content")
    refused = console.page.request.post(
        f"{console.base_url}/ui/dead-letters/requeue",
        form={"csrf": csrf, "pool": "openai"},
        headers={"origin": console.base_url},
    )
    assert refused.status == 400
    assert "job_id" in refused.text()
