"""A route whose primary deployment is down is answered by its fallback on the other provider,
and every attempt shows on the job (docs/queue-semantics.md#retries-and-failover retries and
failover, docs/operations.md#providers-and-routing fallback chains)."""

from __future__ import annotations

import httpx
from openai import OpenAI

from tests.support.configs import FAILING_MODEL, TENANT_KEYS
from tests.support.mock import MockControl
from tests.support.stack import Stack


def test_primary_down_is_answered_by_the_fallback_provider(
    full_stack: Stack, mock: MockControl
) -> None:
    mock.fault(fault="500", model=FAILING_MODEL)
    with OpenAI(base_url=f"{full_stack.url}/v1", api_key=TENANT_KEYS["acme"], max_retries=0) as c:
        raw = c.chat.completions.with_raw_response.create(
            model="resilient", messages=[{"role": "user", "content": "are you there?"}]
        )
    answer = raw.parse()
    assert answer.choices[0].message.content
    job = httpx.get(
        f"{full_stack.url}/v1/jobs/{raw.headers['x-anygate-job-id']}",
        headers={"authorization": f"Bearer {TENANT_KEYS['acme']}"},
    ).json()
    assert job["status"] == "succeeded"
    assert job["provider"] == "gemini"
    history = job["attempt_history"]
    assert [h["provider"] for h in history] == ["openai"] * 3
    assert [h["outcome"] for h in history] == ["retry", "retry", "fall_back"]
    assert all(h["error"]["status"] == 500 for h in history)
    assert job["attempts"] == 4
    upstream = [r["path"] for r in mock.requests()]
    assert sum("chat/completions" in p for p in upstream) == 3
    assert sum("generateContent" in p for p in upstream) == 1


def test_all_steps_down_fails_with_every_attempt_recorded(
    full_stack: Stack, mock: MockControl
) -> None:
    mock.fault(fault="503")
    response = httpx.post(
        f"{full_stack.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {TENANT_KEYS['acme']}"},
        json={"model": "resilient", "messages": [{"role": "user", "content": "hello?"}]},
        timeout=30,
    )
    assert response.status_code == 502
    assert response.headers["x-should-retry"] == "false"
    job = httpx.get(
        f"{full_stack.url}/v1/jobs/{response.headers['x-anygate-job-id']}",
        headers={"authorization": f"Bearer {TENANT_KEYS['acme']}"},
    ).json()
    assert job["status"] == "failed"
    assert [h["provider"] for h in job["attempt_history"]] == ["openai"] * 3 + ["gemini"] * 3
