"""Redis paused (SIGSTOP) under a running stack: our own infrastructure's fault, never a job's or
a deployment's, and no request hangs while it lasts (docs/architecture.md, "Our own faults").

The pause outlasts a lease (3 s in the tests' config) and the clients' socket timeout (5 s):
before these fixes the workers' chunk writes timed out, each became an ``adapter_error`` that
counted against the deployment, its breaker opened, and jobs failed ``circuit_open``; requests
to the API took 5-20 s and then succeeded or failed at random.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as sync_redis

from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.configs import config_tree
from tests.support.faults import redis_paused
from tests.support.jobs import chat_job, submit
from tests.support.mock import MockControl
from tests.support.stack import Stack

PAUSE_S = 6.0
CHUNKS = 10


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis", aof=True).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def stalling_stack(tmp_path: Path, own_redis: EmbeddedRedis, mock: MockControl) -> Iterator[Stack]:
    """API + two workers on a Redis the test may pause; a breaker that would open after three
    failures in a row and two attempts per deployment: any fault counted against the
    deployment or the job would show."""
    tree = config_tree(
        own_redis.url,
        "stall",
        mock_root=mock.url,
        queue={
            "attempts_per_deployment": 2,
            "breaker": {"consecutive_failures": 3, "min_calls": 1000, "cooldown_s": 30},
        },
    )
    stack = Stack(tmp_path, tree)
    try:
        stack.start_api()
        stack.start_worker(concurrency=8)
        stack.start_worker(concurrency=8)
        yield stack
    finally:
        stack.stop()


async def _wait_all(client: httpx.AsyncClient, ids: list[str], timeout: float) -> list[Any]:
    deadline = time.monotonic() + timeout
    done: list[Any] = []
    for job_id in ids:
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"job {job_id} never ended"
            answer = await client.get(f"/v1/jobs/{job_id}", params={"wait": min(10, left)})
            if answer.status_code == 200 and answer.json()["status"] not in {"queued", "running"}:
                done.append(answer.json())
                break
    return done


async def test_a_redis_pause_fails_no_job_and_opens_no_breaker(
    stalling_stack: Stack, own_redis: EmbeddedRedis, mock: MockControl
) -> None:
    mock.settings(chunk_count=CHUNKS, chunk_delay_ms=300)  # each answer streams for ~3 s
    async with stalling_stack.client() as client:
        ids = [(await submit(client, chat_job(f"stall {i}")))["id"] for i in range(24)]
        await asyncio.sleep(1.0)  # 16 of them are mid-stream, 8 wait in the queue
        with redis_paused(own_redis):
            await asyncio.sleep(PAUSE_S)  # the point: the length of Redis's pause
        jobs = await _wait_all(client, ids, timeout=60)
    failed = [(j["id"], j["error"]) for j in jobs if j["status"] != "succeeded"]
    assert not failed, f"jobs failed for Redis' pause: {failed}"
    spent = [(j["id"], j["attempts"], j["attempt_history"]) for j in jobs if j["attempts"] != 1]
    assert not spent, f"Redis' pause spent attempts or redelivered jobs: {spent}"
    assert all(not j["attempt_history"] for j in jobs)
    r = sync_redis.Redis.from_url(own_redis.url, decode_responses=True)
    try:
        health = r.hgetall("ag:{stall}:dh:openai:gpt-4o-mini")
        assert health.get("state", "closed") == "closed", f"the breaker opened: {health}"
        assert int(health.get("fails", 0)) == 0, f"failures were counted: {health}"
        for job_id in ids:  # a write repeated after the pause appended nothing twice
            events = [(f["t"], f["d"]) for _id, f in r.xrange(f"ag:{{stall}}:ev:{job_id}")]
            chunks = [d for t, d in events if t == "chunk"]
            assert len(chunks) == len(set(chunks)), f"{job_id}: a chunk twice: {chunks}"
            assert [t for t, _d in events].count("completed") == 1
    finally:
        r.close()


async def test_requests_during_a_redis_pause_fail_fast_and_recover_at_once(
    stalling_stack: Stack, own_redis: EmbeddedRedis, mock: MockControl
) -> None:
    """Each request completes or is answered 503 with Retry-After within 2 s, never hangs;
    /readyz says not ready, /healthz stays up; once Redis is back, everything works again at
    once (no breaker opened meanwhile, so no 502 either)."""
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    async with stalling_stack.client() as client:
        client.timeout = httpx.Timeout(5.0)
        before = await submit(client, chat_job("before"))
        timings: list[tuple[str, int, float]] = []

        async def timed(label: str, request: Any) -> None:
            t0 = time.monotonic()
            try:
                status = (await request).status_code
            except httpx.TimeoutException:
                status = 0  # hung (the client gave up after 5 s)
            timings.append((label, status, time.monotonic() - t0))

        with redis_paused(own_redis):
            t_end = time.monotonic() + PAUSE_S
            while time.monotonic() < t_end - 2.5:
                await asyncio.gather(
                    timed("submit", client.post("/v1/jobs", json=chat_job("during"))),
                    timed("poll", client.get(f"/v1/jobs/{before['id']}")),
                    timed("sync", client.post("/v1/chat/completions", json=chat)),
                    timed("readyz", client.get("/readyz")),
                    timed("healthz", client.get("/healthz")),
                )
                await asyncio.sleep(0.2)  # the point: probes spread over the whole pause
            await asyncio.sleep(max(0.0, t_end - time.monotonic()))  # ...to its very end
        slow = [t for t in timings if t[2] > 2.0]
        assert not slow, f"requests hung while Redis was paused: {slow}"
        assert {s for label, s, _t in timings if label == "healthz"} == {200}
        assert {s for label, s, _t in timings if label == "readyz"} == {503}
        others = {s for label, s, _t in timings if label in {"submit", "poll", "sync"}}
        assert others <= {503}, f"during the pause: {timings}"
        # and right after it, everything works, synchronous calls included
        assert (await client.post("/v1/chat/completions", json=chat)).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        after = await submit(client, chat_job("after"))
        done = await _wait_all(client, [before["id"], after["id"]], timeout=30)
    assert [j["status"] for j in done] == ["succeeded", "succeeded"]
