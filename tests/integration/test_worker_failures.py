"""Crashes, shutdowns and scale-out with real processes (docs/queue-semantics.md#delivery delivery;
issue 2 tests)."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from anygate.client import AsyncClient
from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.configs import TENANT_KEYS, config_tree
from tests.support.jobs import chat_job, read_sse, submit
from tests.support.mock import MockControl
from tests.support.stack import Stack, running_stack


@pytest.fixture
def bare(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> Iterator[Stack]:
    """An API process, no worker yet: each test starts the workers it needs."""
    with running_stack(tmp_path, config_tree(redis_server.url, namespace, mock_root=mock.url)) as s:
        yield s


async def _status(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get(f"/v1/jobs/{job_id}")).json()
    return body


async def _streaming(client: httpx.AsyncClient, job_id: str, chunks: int = 2) -> None:
    """Return once the job is running and has streamed ``chunks`` chunks (it is mid-answer)."""
    events = await asyncio.wait_for(read_sse(client, job_id, stop_after=2 + chunks), 10)
    assert [k for _i, k, _d in events] == ["queued", "started"] + ["chunk"] * chunks


async def test_kill_9_mid_job_is_redelivered_and_recorded_once(
    bare: Stack, mock: MockControl
) -> None:
    mock.settings(chunk_count=20, chunk_delay_ms=100)
    victim = bare.start_worker(concurrency=2)
    async with bare.client() as client:
        job = await submit(client)
        await _streaming(client, job["id"])
        victim.kill()
        bare.start_worker(concurrency=2)
        done = (await client.get(f"/v1/jobs/{job['id']}", params={"wait": 30})).json()
        events = await read_sse(client, job["id"])
    assert done["status"] == "succeeded"
    assert done["attempts"] == 2
    kinds = [k for _i, k, _d in events]
    assert kinds.count("retry") == 1
    assert kinds.count("completed") == 1
    retry = orjson.loads(next(d for _i, k, d in events if k == "retry"))
    assert retry["attempt"] == 2
    assert retry["reason"] == "lease_expired"
    retry_at = kinds.index("retry")
    retried_text = "".join(
        c["choices"][0]["delta"].get("content") or ""
        for c in (orjson.loads(d) for _i, k, d in events[retry_at:] if k == "chunk")
        if c["choices"]
    )
    assert retried_text == done["result"]["choices"][0]["message"]["content"], (
        "after the retry event, the new attempt streams the whole answer again"
    )

    # the log holds both attempts' chunks; each says which attempt it came from
    def chunk_attempts(part: list[tuple[str, str, str]]) -> set[int]:
        return {orjson.loads(d)["attempt"] for _i, k, d in part if k == "chunk"}

    assert chunk_attempts(events[:retry_at]) == {1}
    assert chunk_attempts(events[retry_at:]) == {2}
    # and the client library, which discards what a retry voids, shows the answer once
    async with AsyncClient(bare.url, TENANT_KEYS["acme"]) as ag:
        deltas = [d async for d in ag.stream_text(job["id"])]
    assert any(d.restart for d in deltas), "the new attempt said: discard what you have"
    text = ""
    for d in deltas:
        text = d.text if d.restart else text + d.text
    assert text == done["result"]["choices"][0]["message"]["content"]


async def test_sigterm_mid_job_finishes_the_job_before_exiting(
    bare: Stack, mock: MockControl
) -> None:
    mock.settings(chunk_count=10, chunk_delay_ms=100)
    worker = bare.start_worker(grace=30)
    async with bare.client() as client:
        job = await submit(client)
        await _streaming(client, job["id"])
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(worker.wait, 20) == 0
        done = await _status(client, job["id"])
    assert done["status"] == "succeeded"
    assert done["attempts"] == 1


async def test_sigterm_past_the_grace_period_hands_the_job_back(
    bare: Stack, mock: MockControl
) -> None:
    mock.settings(chunk_count=20, chunk_delay_ms=100)
    worker = bare.start_worker(grace=0.2)
    async with bare.client() as client:
        job = await submit(client)
        await _streaming(client, job["id"])
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(worker.wait, 20) == 0
        handed_back = await _status(client, job["id"])
        assert handed_back["status"] == "queued", "handed back at once, not after a lease lapses"
        bare.start_worker()
        done = (await client.get(f"/v1/jobs/{job['id']}", params={"wait": 30})).json()
        events = await read_sse(client, job["id"])
    assert done["status"] == "succeeded"
    retry = orjson.loads(next(d for _i, k, d in events if k == "retry"))
    assert retry["reason"] == "worker_shutdown"


async def test_two_apis_and_two_workers_share_the_work_exactly_once(
    bare: Stack, mock: MockControl
) -> None:
    mock.settings(latency_ms=5)
    bare.start_api()
    bare.start_worker(concurrency=8)
    bare.start_worker(concurrency=8)
    n = 120
    async with bare.client(api=0) as api0, bare.client(api=1) as api1:
        jobs = await asyncio.gather(
            *(submit(api0 if i % 2 else api1, chat_job(f"job-{i}")) for i in range(n))
        )
        done = await asyncio.gather(
            *(
                (api1 if i % 2 else api0).get(f"/v1/jobs/{j['id']}", params={"wait": 30})
                for i, j in enumerate(jobs)
            )
        )
        events = await read_sse(api1, jobs[0]["id"])
    results = [d.json() for d in done]
    assert all(r["status"] == "succeeded" and r["attempts"] == 1 for r in results)
    workers = Counter(orjson.loads(d)["worker"] for _i, k, d in events if k == "started")
    assert sum(workers.values()) == 1
    seen = Counter(m["content"] for r in mock.requests() for m in r["body"]["messages"])
    assert all(seen[f"job-{i}"] == 1 for i in range(n))


async def test_both_workers_take_part(bare: Stack, mock: MockControl) -> None:
    mock.settings(latency_ms=50)
    bare.start_worker(concurrency=4)
    bare.start_worker(concurrency=4)
    async with bare.client() as client:
        jobs = await asyncio.gather(*(submit(client) for _ in range(40)))
        for j in jobs:
            await client.get(f"/v1/jobs/{j['id']}", params={"wait": 30})
        workers = set()
        for j in jobs:
            events = await read_sse(client, j["id"])
            workers |= {orjson.loads(d)["worker"] for _i, k, d in events if k == "started"}
    assert len(workers) == 2


async def test_a_tenants_single_job_overtakes_a_backlog_end_to_end(
    bare: Stack, mock: MockControl
) -> None:
    async with bare.client("acme") as acme, bare.client("globex") as globex:
        backlog = [await submit(acme, chat_job(f"a{i}")) for i in range(60)]
        single = await submit(globex)
        bare.start_worker(concurrency=1)
        done = (await globex.get(f"/v1/jobs/{single['id']}", params={"wait": 30})).json()
        started = [(await _status(acme, j["id"]))["started_at"] for j in backlog]
    before = sum(1 for s in started if s is not None and s < done["started_at"])
    assert before <= 2, f"{before} backlog jobs started first; N = 2 tenants"
