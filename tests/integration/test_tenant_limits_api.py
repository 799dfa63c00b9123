"""Tenant quotas as clients meet them (docs/queue-semantics.md#quotas, issue 5): 429 ``queue_full``
with Retry-After over the queued-jobs cap, 429 ``insufficient_quota`` once a budget is spent (as the
OpenAI SDK raises them), an in-flight cap that makes the tenant wait without slowing anyone else,
and a tenant's requests/min pacing only that tenant."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from redis import asyncio as redis_lib

from anygate.broker import KeySpace
from anygate.broker.tenant_store import TenantStore
from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.configs import TENANT_KEYS, config_tree, hash_key
from tests.support.mock import MockControl
from tests.support.stack import Stack, running_stack


def _chat(text: str = "hi") -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}


def _job(text: str = "hi") -> dict[str, Any]:
    return {"endpoint": "/v1/chat/completions", "body": _chat(text)}


@pytest.fixture
def quota_stack(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    redis_server: EmbeddedRedis,
    namespace: str,
    mock: MockControl,
) -> Iterator[Stack]:
    quotas: dict[str, Any] = request.param
    tree = config_tree(
        redis_server.url, namespace, mock_root=mock.url, queue={"rate_limit_window_s": 1.0}
    )
    tree["tenants"] = [
        {"id": "acme", "api_key_sha256": [hash_key(TENANT_KEYS["acme"])], "quotas": quotas},
        {"id": "globex", "api_key_sha256": [hash_key(TENANT_KEYS["globex"])]},
    ]
    with running_stack(tmp_path, tree, ["openai"]) as stack:
        yield stack


@pytest.mark.parametrize("quota_stack", [{"max_queued": 3}], indirect=True)
async def test_over_the_queued_cap_submit_gets_queue_full_with_retry_after(
    quota_stack: Stack, mock: MockControl
) -> None:
    quota_stack.stop_workers("openai")  # nothing starts: the queue only fills
    async with quota_stack.client() as client:
        for _ in range(3):
            assert (await client.post("/v1/jobs", json=_job())).status_code == 202
        refused = await client.post("/v1/jobs", json=_job())
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        error = refused.json()["error"]
        assert error["code"] == "queue_full"
        assert error["type"] == "rate_limit_error"
        listed = (await client.get("/v1/jobs")).json()["data"]
        assert len(listed) == 3, "the refused job left no trace; the others are all there"
    async with quota_stack.client("globex") as other:
        assert (await other.post("/v1/jobs", json=_job())).status_code == 202
    with (
        openai.OpenAI(
            base_url=f"{quota_stack.url}/v1", api_key=TENANT_KEYS["acme"], max_retries=0
        ) as sdk,
        pytest.raises(openai.RateLimitError) as raised,
    ):
        sdk.chat.completions.create(**_chat())
    assert raised.value.code == "queue_full"


@pytest.mark.parametrize("quota_stack", [{"daily_tokens": 30}], indirect=True)
async def test_a_spent_budget_answers_insufficient_quota(
    quota_stack: Stack, mock: MockControl
) -> None:
    mock.settings(prompt_tokens=10, completion_tokens=10)
    with openai.OpenAI(
        base_url=f"{quota_stack.url}/v1", api_key=TENANT_KEYS["acme"], max_retries=0
    ) as sdk:
        sdk.chat.completions.create(**_chat())  # 20 tokens
        sdk.chat.completions.create(**_chat())  # 40: over, but it was admitted at 20
        with pytest.raises(openai.RateLimitError) as raised:
            sdk.chat.completions.create(**_chat())
    assert raised.value.code == "insufficient_quota"
    assert raised.value.body is not None
    assert int(raised.value.response.headers["retry-after"]) <= 86_400
    assert len(mock.requests()) == 2
    async with quota_stack.client("globex") as other:
        assert (await other.post("/v1/chat/completions", json=_chat())).status_code == 200


@pytest.mark.parametrize("quota_stack", [{"max_in_flight": 2}], indirect=True)
async def test_a_tenant_at_its_in_flight_cap_does_not_slow_others(
    quota_stack: Stack, mock: MockControl
) -> None:
    mock.settings(latency_ms=400)
    async with quota_stack.client() as acme, quota_stack.client("globex") as globex:
        backlog = [
            asyncio.create_task(acme.post("/v1/chat/completions", json=_chat(f"a{i}")))
            for i in range(8)
        ]
        await asyncio.sleep(0.2)  # the point: acme's backlog is queued first, globex comes later
        started = time.monotonic()
        answer = await globex.post("/v1/chat/completions", json=_chat("g"))
        took = time.monotonic() - started
        assert answer.status_code == 200
        assert took < 1.0, f"globex waited {took:.2f} s behind acme's backlog"
        assert all(r.status_code == 200 for r in await asyncio.gather(*backlog))
    acme_calls = [r for r in mock.requests() if "a" in str(r["body"]["messages"][0]["content"])]
    overlap = max(
        sum(1 for o in acme_calls if o["started_at"] <= r["started_at"] < o["finished_at"])
        for r in acme_calls
    )
    assert overlap <= 2, f"{overlap} of acme's calls ran at once"


@pytest.mark.parametrize("quota_stack", [{"rpm": 300}], indirect=True)  # 5 per 1 s window
async def test_a_tenants_rpm_paces_its_jobs_only(quota_stack: Stack, mock: MockControl) -> None:
    async with quota_stack.client() as acme, quota_stack.client("globex") as globex:
        started = time.monotonic()
        burst = [
            asyncio.create_task(acme.post("/v1/chat/completions", json=_chat(f"a{i}")))
            for i in range(12)
        ]
        await asyncio.sleep(0.1)  # the point: acme's burst is queued first, globex comes later
        quick = await globex.post("/v1/chat/completions", json=_chat("g"))
        assert quick.status_code == 200
        assert time.monotonic() - started < 1.0
        answers = await asyncio.gather(*burst)
    assert all(a.status_code == 200 for a in answers), "nobody saw a 429"
    acme_starts = sorted(
        r["started_at"]
        for r in mock.requests()
        if str(r["body"]["messages"][0]["content"])[0] == "a"
    )
    assert len(acme_starts) == 12
    for i, first in enumerate(acme_starts):
        assert sum(1 for t in acme_starts[i:] if t < first + 1.0) <= 5
    assert acme_starts[-1] - acme_starts[0] >= 1.8, "12 jobs at 5 per second take 2 windows"


@pytest.mark.parametrize("quota_stack", [{}], indirect=True)
async def test_an_in_flight_cap_set_through_the_admin_api_holds_at_once_on_workers(
    quota_stack: Stack, mock: MockControl, redis_server: EmbeddedRedis
) -> None:
    """Quotas live in the tenant store: a PATCH reaches running workers (the auth channel,
    then the tenants' version counter) without a restart."""
    redis = redis_lib.from_url(redis_server.url, decode_responses=True)
    store = TenantStore(redis, KeySpace(quota_stack.tree["redis"]["namespace"]))
    _record, key = await store.create_key(None, scopes=("admin",))  # as `anygate keys create`
    await redis.aclose()
    async with httpx.AsyncClient(
        base_url=quota_stack.url, headers={"authorization": f"Bearer {key}"}, timeout=10
    ) as admin:
        patched = await admin.patch("/admin/tenants/acme", json={"quotas": {"max_in_flight": 1}})
        assert patched.status_code == 200, patched.text
    mock.settings(latency_ms=300)
    async with quota_stack.client() as acme:
        answers = await asyncio.gather(
            *(acme.post("/v1/chat/completions", json=_chat(f"a{i}")) for i in range(4))
        )
    assert all(a.status_code == 200 for a in answers)
    calls = mock.requests()
    overlap = max(
        sum(1 for o in calls if o["started_at"] <= r["started_at"] < o["finished_at"])
        for r in calls
    )
    assert overlap == 1, f"{overlap} of acme's calls ran at once under a cap of 1"
