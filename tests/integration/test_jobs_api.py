"""The native job API end to end: API and worker processes, real Redis, mock provider over HTTP."""

from __future__ import annotations

import asyncio
import time

import orjson

from tests.support.eventually import eventually
from tests.support.jobs import CHAT, chat_job, read_sse, submit
from tests.support.mock import MockControl
from tests.support.stack import Stack


async def test_submit_then_poll_returns_the_result(stack: Stack) -> None:
    async with stack.client() as client:
        job = await submit(client)
        assert job["status"] == "queued"
        assert job["priority"] == "standard"
        done = (await client.get(f"/v1/jobs/{job['id']}", params={"wait": 10})).json()
    assert done["status"] == "succeeded"
    assert done["result"]["object"] == "chat.completion"
    assert done["result"]["choices"][0]["message"]["content"]
    assert done["usage"]["total_tokens"] > 0
    assert done["cost_usd"] > 0
    assert done["attempts"] == 1
    assert done["provider"] == "openai"


async def test_long_poll_returns_within_100ms_of_completion(
    stack: Stack, mock: MockControl
) -> None:
    mock.settings(latency_ms=600)
    async with stack.client() as client:
        job = await submit(client)
        response = await client.get(f"/v1/jobs/{job['id']}", params={"wait": 10})
        returned = time.time()
    body = response.json()
    assert body["status"] == "succeeded"
    lag = returned - body["finished_at"]  # Redis and this process share the machine's clock
    assert lag < 0.1, f"long-poll answered {lag:.3f}s after completion"


async def test_long_poll_times_out_with_the_current_state(stack: Stack, mock: MockControl) -> None:
    mock.settings(latency_ms=3000)
    async with stack.client() as client:
        job = await submit(client)
        t0 = time.monotonic()
        body = (await client.get(f"/v1/jobs/{job['id']}", params={"wait": 0.3})).json()
        assert 0.25 < time.monotonic() - t0 < 2
        assert body["status"] in {"queued", "running"}


async def test_sse_delivers_the_whole_lifecycle_in_order(stack: Stack) -> None:
    async with stack.client() as client:
        job = await submit(client)
        events = await read_sse(client, job["id"])
    kinds = [kind for _id, kind, _data in events]
    assert kinds[:2] == ["queued", "started"]
    assert kinds[-1] == "completed"
    chunks = [orjson.loads(data) for _id, kind, data in events if kind == "chunk"]
    assert len(chunks) >= 8
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    ids = [eid for eid, _k, _d in events]
    assert len(set(ids)) == len(ids)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    final = orjson.loads(events[-1][2])
    assert final["result"]["choices"][0]["message"]["content"] == text


async def test_sse_reconnect_with_last_event_id_replays_the_rest_once(
    stack: Stack, mock: MockControl
) -> None:
    mock.settings(chunk_count=12, chunk_delay_ms=40)
    async with stack.client() as client:
        job = await submit(client)
        first = await read_sse(client, job["id"], stop_after=5)
        rest = await read_sse(client, job["id"], last_id=first[-1][0])
        full = await read_sse(client, job["id"])
    assert first + rest == full
    assert full[-1][1] == "completed"


async def test_sse_on_a_finished_job_replays_and_ends(stack: Stack) -> None:
    async with stack.client() as client:
        job = await submit(client)
        await client.get(f"/v1/jobs/{job['id']}", params={"wait": 10})
        events = await asyncio.wait_for(read_sse(client, job["id"]), 5)
    assert events[-1][1] == "completed"


async def test_list_is_newest_first_with_cursor_pagination(stack: Stack) -> None:
    async with stack.client() as client:
        ids = [(await submit(client))["id"] for _ in range(5)]
        page = (await client.get("/v1/jobs", params={"limit": 3})).json()
        assert page["object"] == "list"
        assert [j["id"] for j in page["data"]] == ids[::-1][:3]
        assert page["has_more"] is True
        assert page["first_id"] == ids[-1]
        rest = (await client.get("/v1/jobs", params={"limit": 3, "after": page["last_id"]})).json()
        assert [j["id"] for j in rest["data"]] == ids[::-1][3:]
        assert rest["has_more"] is False


async def test_cancelled_queued_job_never_reaches_the_provider(
    stack: Stack, mock: MockControl
) -> None:
    for proc in stack.workers:
        proc.terminate()
    stack.workers.clear()
    async with stack.client() as client:
        job = await submit(client, chat_job("never-send-this"))
        cancelled = (await client.post(f"/v1/jobs/{job['id']}/cancel")).json()
        assert cancelled["status"] == "cancelled"
        stack.start_worker()
        marker = await submit(client, chat_job("after-cancel"))
        done = (await client.get(f"/v1/jobs/{marker['id']}", params={"wait": 10})).json()
        assert done["status"] == "succeeded"
        final = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert final["status"] == "cancelled"
    assert not any("never-send-this" in orjson.dumps(r["body"]).decode() for r in mock.requests())


async def test_cancelled_running_job_aborts_its_upstream_call_within_1s(
    stack: Stack, mock: MockControl
) -> None:
    mock.fault(fault="hang", times=1)
    async with stack.client() as client:
        job = await submit(client)

        async def running() -> bool:
            return bool((await client.get(f"/v1/jobs/{job['id']}")).json()["status"] == "running")

        await eventually(running)
        await eventually(lambda: len(mock.requests()) == 1)
        cancelled_at = time.time()
        body = (await client.post(f"/v1/jobs/{job['id']}/cancel")).json()
        assert body["status"] == "cancelled"
        await eventually(lambda: mock.requests()[0]["aborted"], timeout=3)
    aborted_at = mock.requests()[0]["aborted_at"]
    assert aborted_at - cancelled_at < 1.0


async def test_cancel_of_a_finished_job_changes_nothing(stack: Stack) -> None:
    async with stack.client() as client:
        job = await submit(client)
        await client.get(f"/v1/jobs/{job['id']}", params={"wait": 10})
        after = (await client.post(f"/v1/jobs/{job['id']}/cancel")).json()
    assert after["status"] == "succeeded"


async def test_idempotency_key_same_body_same_job(stack: Stack) -> None:
    async with stack.client() as client:
        headers = {"idempotency-key": "order-42"}
        a = await client.post("/v1/jobs", json=chat_job(), headers=headers)
        b = await client.post("/v1/jobs", json=chat_job(), headers=headers)
    assert a.json()["id"] == b.json()["id"]
    assert b.headers["idempotent-replayed"] == "true"


async def test_idempotency_key_other_body_is_409(stack: Stack) -> None:
    async with stack.client() as client:
        headers = {"idempotency-key": "order-43"}
        await client.post("/v1/jobs", json=chat_job("one"), headers=headers)
        response = await client.post("/v1/jobs", json=chat_job("two"), headers=headers)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert response.json()["error"]["param"] == "Idempotency-Key"


async def test_other_tenants_job_is_404(stack: Stack) -> None:
    async with stack.client("acme") as acme, stack.client("globex") as globex:
        job = await submit(acme)
        for response in (
            await globex.get(f"/v1/jobs/{job['id']}"),
            await globex.get(f"/v1/jobs/{job['id']}/events"),
            await globex.post(f"/v1/jobs/{job['id']}/cancel"),
        ):
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "job_not_found"
        assert (await globex.get("/v1/jobs")).json()["data"] == []


async def test_every_response_carries_a_request_id(stack: Stack) -> None:
    async with stack.client() as client:
        ok = await client.get("/healthz")
        bad = await client.post("/v1/jobs", content=b"{")
        echoed = await client.get("/healthz", headers={"x-request-id": "trace-1"})
    assert ok.headers["x-request-id"].startswith("req_")
    assert bad.headers["x-request-id"].startswith("req_")
    assert echoed.headers["x-request-id"] == "trace-1"


async def test_upstream_400_fails_the_job_with_the_providers_message(
    stack: Stack,
) -> None:
    async with stack.client() as client:
        bad_upstream = {  # valid to the gateway; the provider knows no such function
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "known"}}],
            "tool_choice": {"type": "function", "function": {"name": "unknown"}},
        }
        job = await submit(client, {"endpoint": CHAT, "body": bad_upstream})
        done = (await client.get(f"/v1/jobs/{job['id']}", params={"wait": 10})).json()
    assert done["status"] == "failed"
    assert done["attempts"] == 1
    assert done["error"]["upstream_status"] == 400


async def test_transient_upstream_errors_are_retried(stack: Stack, mock: MockControl) -> None:
    mock.fault(fault="500", times=2)
    async with stack.client() as client:
        job = await submit(client)
        done = (await client.get(f"/v1/jobs/{job['id']}", params={"wait": 10})).json()
        events = await read_sse(client, job["id"])
    assert done["status"] == "succeeded"
    assert done["attempts"] == 3
    assert [k for _i, k, _d in events].count("retry") == 2


async def test_upstream_429_requeues_without_spending_an_attempt(
    stack: Stack, mock: MockControl
) -> None:
    mock.fault(fault="429", retry_after=1, times=1)
    async with stack.client() as client:
        job = await submit(client)
        done = (await client.get(f"/v1/jobs/{job['id']}", params={"wait": 10})).json()
    assert done["status"] == "succeeded"
    assert done["attempts"] == 1
    requests = mock.requests()
    assert len(requests) == 2
    assert requests[0]["status"] == 429
    first_end = requests[0]["finished_at"]
    assert requests[1]["started_at"] - first_end >= 0.9, "Retry-After was honoured"


async def test_embeddings_job_returns_the_providers_vectors(stack: Stack) -> None:
    job = {
        "endpoint": "/v1/embeddings",
        "body": {"model": "text-embedding-3-small", "input": ["a", "b"]},
    }
    async with stack.client() as client:
        submitted = await submit(client, job)
        done = (await client.get(f"/v1/jobs/{submitted['id']}", params={"wait": 10})).json()
    assert done["status"] == "succeeded"
    assert done["result"]["object"] == "list"
    assert [d["index"] for d in done["result"]["data"]] == [0, 1]
    assert all(isinstance(d["embedding"], list) for d in done["result"]["data"])
    assert done["usage"]["prompt_tokens"] > 0


async def test_non_streamed_chat_job_is_answered_by_one_upstream_call(
    stack: Stack, mock: MockControl
) -> None:
    """Jobs that nobody streams (the synchronous non-stream surface) skip upstream streaming."""
    from anygate.broker import Broker, NewJob, create_redis, new_job_id  # noqa: PLC0415
    from anygate.config import Priority, parse_config  # noqa: PLC0415

    config = parse_config(stack.tree)
    redis = create_redis(config.redis)
    try:
        job_id = new_job_id(config.shard_of("openai"))
        body = orjson.dumps(
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "plain"}]}
        )
        await Broker(redis, config).enqueue(
            NewJob("acme", "openai", CHAT, "gpt-4o-mini", body, Priority.INTERACTIVE, stream=False),
            job_id,
        )
    finally:
        await redis.aclose()
    async with stack.client() as client:
        done = (await client.get(f"/v1/jobs/{job_id}", params={"wait": 10})).json()
        events = await read_sse(client, job_id)
    assert done["status"] == "succeeded"
    assert done["result"]["object"] == "chat.completion"
    assert "chunk" not in [k for _i, k, _d in events]
    assert mock.requests()[0]["stream"] is False
