"""The admin API's operations side (docs/api.md#admin-api) end to end: usage, queues, workers,
pausing a pool, dead letters; API and worker processes, real Redis, the mock provider over HTTP."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.admin import JOB, admin_tree, as_admin, keyed, new_key, new_tenant
from tests.support.eventually import eventually
from tests.support.mock import MockControl
from tests.support.stack import Stack, running_stack

CHAT = JOB["body"]


@pytest.fixture(scope="module")
def ops_stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis, mock_server: str
) -> Iterator[Stack]:
    tree = admin_tree(redis_server.url, f"t{secrets.token_hex(5)}", mock_server)
    with running_stack(tmp_path_factory.mktemp("ops"), tree, ["openai"]) as stack:
        yield stack


@pytest.fixture
def workerless(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> Iterator[Stack]:
    """An API process; workers only when a test starts them."""
    with running_stack(tmp_path, admin_tree(redis_server.url, namespace, mock.url)) as stack:
        yield stack


def raw_redis(stack: Stack) -> tuple[redis.Redis, str]:
    tree = stack.tree["redis"]
    return redis.Redis.from_url(tree["url"], decode_responses=True), f"ag:{{{tree['namespace']}}}:"


async def tenant_with_key(admin_client: httpx.AsyncClient) -> tuple[str, str]:
    tenant = await new_tenant(admin_client)
    return tenant, (await new_key(admin_client, tenant=tenant))["key"]


async def wait_status(client: httpx.AsyncClient, job_id: str, wait: float = 10) -> dict[str, Any]:
    body: dict[str, Any] = (
        await client.get(f"/v1/jobs/{job_id}", params={"wait": wait}, timeout=wait + 5)
    ).json()
    return body


def pool_of(answer: httpx.Response, pool: str = "openai") -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = next(p for p in answer.json()["data"] if p["id"] == pool)
    return found


class TestUsage:
    async def test_rows_match_the_providers_token_counts(
        self, ops_stack: Stack, mock: MockControl
    ) -> None:
        mock.settings(prompt_tokens=11, completion_tokens=7)
        async with as_admin(ops_stack) as admin_client:
            tenant, key = await tenant_with_key(admin_client)
            async with keyed(ops_stack, key) as client:
                for _ in range(3):
                    assert (await client.post("/v1/chat/completions", json=CHAT)).status_code == 200
            mine = (await admin_client.get("/admin/usage", params={"tenant": tenant})).json()
            everyone = (await admin_client.get("/admin/usage")).json()
        today = time.strftime("%Y-%m-%d", time.gmtime())
        assert mine["from"] == mine["to"] == today
        assert mine["data"] == [
            {
                "object": "usage",
                "tenant": tenant,
                "model": "gpt-4o-mini",
                "date": today,
                "requests": 3,
                "prompt_tokens": 33,
                "completion_tokens": 21,
                "total_tokens": 54,
                "cost_usd": pytest.approx(3 * (11 * 0.15 + 7 * 0.6) / 1e6),
            }
        ]
        assert mine["data"][0] in everyone["data"], "without ?tenant=, every tenant's rows"

    async def test_the_date_range_is_checked(self, ops_stack: Stack) -> None:
        async with as_admin(ops_stack) as admin_client:
            for params, param in (
                ({"from": "2025-01-02", "to": "2025-01-01"}, "from"),
                ({"from": "2024-01-01", "to": "2025-01-01"}, "from"),  # 367 days
                ({"from": "2025-1-1"}, "from"),
                ({"to": "yesterday"}, "to"),
            ):
                answer = await admin_client.get("/admin/usage", params=params)
                assert answer.status_code == 400, params
                assert answer.json()["error"]["param"] == param
            year = await admin_client.get(
                "/admin/usage", params={"from": "2024-01-01", "to": "2024-12-31"}
            )
            assert year.status_code == 200, "366 days (a leap year) is the most"
            assert year.json()["data"] == []


class TestQueuesAndPause:
    async def test_queues_show_depth_and_oldest_age_of_a_backlog(self, workerless: Stack) -> None:
        async with as_admin(workerless) as admin_client:
            (a, a_key), (b, b_key) = [await tenant_with_key(admin_client) for _ in range(2)]
            async with keyed(workerless, a_key) as client_a, keyed(workerless, b_key) as client_b:
                for _ in range(3):
                    assert (await client_a.post("/v1/jobs", json=JOB)).status_code == 202
                await asyncio.sleep(0.6)  # the point: the backlog's oldest job ages
                urgent = {**JOB, "priority": "interactive"}
                assert (await client_b.post("/v1/jobs", json=urgent)).status_code == 202
            queue = pool_of(await admin_client.get("/admin/queues"))
            assert queue["queued"] == 4
            assert queue["paused"] is False
            assert queue["in_flight"] == queue["delayed"] == queue["redeliver"] == 0
            lanes = {(lane["class"], lane["tenant"]): lane for lane in queue["lanes"]}
            assert set(lanes) == {("interactive", b), ("standard", a)}
            assert lanes["standard", a]["depth"] == 3
            assert lanes["interactive", b]["depth"] == 1
            assert 0.6 <= lanes["standard", a]["oldest_age_s"] < 5
            assert lanes["interactive", b]["oldest_age_s"] < 0.6
            assert pool_of(await admin_client.get("/admin/queues"), "gemini")["lanes"] == []

            workerless.start_worker()
            await eventually(
                lambda: _drained(admin_client), timeout=10, interval=0.1
            )  # the lanes empty out as the worker takes the jobs

    async def test_pause_holds_dispatch_and_resume_runs_what_waited(
        self, ops_stack: Stack, mock: MockControl
    ) -> None:
        mock.settings(latency_ms=700)
        async with as_admin(ops_stack) as admin_client:
            _tenant, key = await tenant_with_key(admin_client)
            async with keyed(ops_stack, key) as client:
                running = (await client.post("/v1/jobs", json=JOB)).json()
                await eventually(lambda: _has_status(client, running["id"], "running"), timeout=5)
                paused = await admin_client.post("/admin/pools/openai/pause")
                assert paused.json() == {"object": "pool", "id": "openai", "paused": True}
                held = await client.post("/v1/jobs", json=JOB)
                assert held.status_code == 202, "submissions are still accepted"
                done = await wait_status(client, running["id"])
                assert done["status"] == "succeeded", "a running job finishes"
                await asyncio.sleep(
                    1.0
                )  # the point: four idle polls of the worker dispatch nothing
                assert (await wait_status(client, held.json()["id"], 0))["status"] == "queued"
                queue = pool_of(await admin_client.get("/admin/queues"))
                assert queue["paused"] is True
                assert queue["paused_at"] is not None
                assert sum(lane["depth"] for lane in queue["lanes"]) == 1

                mock.settings(latency_ms=0)
                resumed_at = time.monotonic()
                resumed = await admin_client.post("/admin/pools/openai/resume")
                assert resumed.json()["paused"] is False
                after = await wait_status(client, held.json()["id"])
                assert after["status"] == "succeeded"
                assert time.monotonic() - resumed_at < 0.5, "resume wakes the idle workers"
            assert pool_of(await admin_client.get("/admin/queues"))["paused"] is False

    async def test_an_unknown_pool_is_404(self, ops_stack: Stack) -> None:
        async with as_admin(ops_stack) as admin_client:
            for action in ("pause", "resume"):
                answer = await admin_client.post(f"/admin/pools/nowhere/{action}")
                assert answer.status_code == 404
                assert "nowhere" in answer.json()["error"]["message"]


async def _drained(admin_client: httpx.AsyncClient) -> bool:
    queue = pool_of(await admin_client.get("/admin/queues"))
    return queue["lanes"] == [] and queue["queued"] == 0


async def _has_status(client: httpx.AsyncClient, job_id: str, status: str) -> bool:
    return (await wait_status(client, job_id, 0))["status"] == status


async def test_workers_lists_live_workers_with_their_concurrency(ops_stack: Stack) -> None:
    victim = ops_stack.start_worker(concurrency=3)
    try:
        victim.kill()  # no goodbye: its registry entry stays until reclaim forgets it
        async with as_admin(ops_stack) as admin_client:
            pool = pool_of(await admin_client.get("/admin/workers"))
            assert len(pool["workers"]) == 2
            now = time.time()
            for worker in pool["workers"]:
                assert now - worker["last_heartbeat"] < 2
                assert worker["in_flight"] == 0
            assert sorted(w["concurrency"] for w in pool["workers"]) == [3, 8]

            async def one_silent() -> dict[str, Any]:
                pool = pool_of(await admin_client.get("/admin/workers"))
                alive = {w["concurrency"]: w["alive"] for w in pool["workers"]}
                assert alive == {8: True, 3: False}, alive
                return pool

            # three heartbeat intervals of silence make the killed worker not alive
            pool = await eventually(one_silent, what="the killed worker reported dead", timeout=5)
            assert pool["alive"] == 1
            assert pool["concurrency"] == 8
            gemini = pool_of(await admin_client.get("/admin/workers"), "gemini")
            assert gemini["workers"] == []
    finally:
        victim.terminate()


class TestDeadLetters:
    async def _dead_job(
        self, stack: Stack, mock: MockControl, client: httpx.AsyncClient
    ) -> dict[str, Any]:
        """A job that fails for good: the provider answers 500 to each of its attempts."""
        mock.fault(fault="500", model="gpt-4o-mini", times=3)
        job = (await client.post("/v1/jobs", json=JOB)).json()
        done = await wait_status(client, job["id"])
        assert done["status"] == "failed", done
        return done

    async def test_a_failed_job_is_listed(self, ops_stack: Stack, mock: MockControl) -> None:
        async with as_admin(ops_stack) as admin_client:
            tenant, key = await tenant_with_key(admin_client)
            async with keyed(ops_stack, key) as client:
                dead = await self._dead_job(ops_stack, mock, client)
            listed = await admin_client.get("/admin/dead-letters", params={"pool": "openai"})
            assert listed.status_code == 200
            entry = next(j for j in listed.json()["data"] if j["id"] == dead["id"])
            assert entry["tenant"] == tenant
            assert entry["status"] == "failed"
            assert len(entry["attempt_history"]) == 3
            assert pool_of(await admin_client.get("/admin/queues"))["dead_letters"] >= 1
            for params, status in (({}, 400), ({"pool": "nowhere"}, 404)):
                assert (
                    await admin_client.get("/admin/dead-letters", params=params)
                ).status_code == (status)

    async def test_a_requeued_dead_letter_runs_again_and_succeeds(
        self, ops_stack: Stack, mock: MockControl
    ) -> None:
        """A dead letter keeps its request as long as its record; requeued, the job goes back
        to its lane as a fresh job: attempts start over, the history of the failed ones stays,
        and the tenant's counters come back to zero when it is done."""
        r, prefix = raw_redis(ops_stack)
        async with as_admin(ops_stack) as admin_client:
            tenant, key = await tenant_with_key(admin_client)
            async with keyed(ops_stack, key) as client:
                dead = await self._dead_job(ops_stack, mock, client)
                listed = await admin_client.get("/admin/dead-letters", params={"pool": "openai"})
                entry = next(j for j in listed.json()["data"] if j["id"] == dead["id"])
                assert entry["requeueable"] is True
                answer = await admin_client.post(
                    "/admin/dead-letters/requeue",
                    json={"pool": "openai", "job_ids": [dead["id"], "job_gone", dead["id"]]},
                )
                assert answer.status_code == 200, answer.text
                assert answer.json()["requeued"] == [dead["id"]]
                assert answer.json()["skipped"] == [{"id": "job_gone", "reason": "expired"}]
                done = await wait_status(client, dead["id"])
                assert done["status"] == "succeeded"
                assert done["attempts"] == 1
                assert len(done["attempt_history"]) == 3
                assert done["error"] is None
                again = await admin_client.post(
                    "/admin/dead-letters/requeue", json={"pool": "openai", "job_ids": [dead["id"]]}
                )
                assert again.json()["skipped"] == [{"id": dead["id"], "reason": "not_dead"}]
            listed = await admin_client.get("/admin/dead-letters", params={"pool": "openai"})
            assert dead["id"] not in {j["id"] for j in listed.json()["data"]}
        assert r.hget(f"{prefix}tqueued", tenant) == "0"
        assert r.hget(f"{prefix}tinflight", tenant) == "0"
        assert r.ttl(f"{prefix}job:{dead['id']}") > 0, "terminal again: it expires again"
        r.close()

    async def test_requeue_without_ids_takes_the_whole_list(
        self, ops_stack: Stack, mock: MockControl
    ) -> None:
        async with as_admin(ops_stack) as admin_client:
            _tenant, key = await tenant_with_key(admin_client)
            async with keyed(ops_stack, key) as client:
                ids = []
                for _ in range(2):
                    ids.append((await self._dead_job(ops_stack, mock, client))["id"])
                answer = await admin_client.post(
                    "/admin/dead-letters/requeue", json={"pool": "openai"}
                )
                assert set(ids) <= set(answer.json()["requeued"])
                for job_id in ids:
                    assert (await wait_status(client, job_id))["status"] == "succeeded"
            bad = await admin_client.post("/admin/dead-letters/requeue", json={"job_ids": ["x"]})
            assert bad.status_code == 400
            assert bad.json()["error"]["param"] == "pool"

    async def test_a_dead_letter_keeps_its_request_for_requeue(
        self, ops_stack: Stack, mock: MockControl
    ) -> None:
        async with as_admin(ops_stack) as admin_client:
            _tenant, key = await tenant_with_key(admin_client)
            async with keyed(ops_stack, key) as client:
                dead = await self._dead_job(ops_stack, mock, client)
                answer = await admin_client.post(
                    "/admin/dead-letters/requeue", json={"pool": "openai", "job_ids": [dead["id"]]}
                )
                assert answer.json()["requeued"] == [dead["id"]], answer.json()
                assert (await wait_status(client, dead["id"]))["status"] == "succeeded"
