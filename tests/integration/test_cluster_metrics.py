"""The cluster series against real processes: the counters the scripts keep agree with the jobs'
own records, across two workers, a SIGKILL mid-run and a replacement (docs/metrics.md)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from anygate.broker import ClusterCollector
from anygate.broker.cluster_counters import NANO_USD, TokenKind
from anygate.broker.cluster_snapshot import BreakerGauge, ClusterSnapshot
from anygate.broker.keys import KeySpace
from anygate.config import Priority, parse_config
from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.configs import config_tree
from tests.support.eventually import eventually
from tests.support.jobs import CHAT, chat_job, submit
from tests.support.mock import MockControl
from tests.support.stack import Stack, running_stack

DAILY_USD = 50.0
BAD_UPSTREAM = {  # valid to the gateway; the provider knows no such function: a 400, no retry
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "x"}],
    "tools": [{"type": "function", "function": {"name": "known"}}],
    "tool_choice": {"type": "function", "function": {"name": "unknown"}},
}


@pytest.fixture
def tree(redis_server: EmbeddedRedis, namespace: str, mock: MockControl) -> dict[str, Any]:
    tree = config_tree(redis_server.url, namespace, mock_root=mock.url)
    tree["tenants"][0]["quotas"] = {"daily_usd": DAILY_USD}  # acme has a budget
    return tree


@pytest.fixture
def bare(tmp_path: Path, tree: dict[str, Any]) -> Iterator[Stack]:
    """An API process, no worker yet: the test starts and kills its own."""
    with running_stack(tmp_path, tree) as s:
        yield s


@pytest.fixture
def collector(redis: Redis, tree: dict[str, Any], namespace: str) -> ClusterCollector:
    return ClusterCollector(redis, KeySpace(namespace), parse_config(tree))


async def _record(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get(f"/v1/jobs/{job_id}")).json()
    return body


async def _ended(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    body: dict[str, Any] = (
        await client.get(f"/v1/jobs/{job_id}", params={"wait": 30}, timeout=40)
    ).json()
    assert body["status"] in {"succeeded", "failed", "cancelled", "expired"}, body
    return body


async def test_counters_match_the_jobs_records_across_a_killed_worker(
    bare: Stack, mock: MockControl, collector: ClusterCollector
) -> None:
    standard = ("openai", Priority.STANDARD)
    owned: list[tuple[httpx.AsyncClient, dict[str, Any]]] = []

    async def submit_as(client: httpx.AsyncClient, job: dict[str, Any]) -> dict[str, Any]:
        submitted = await submit(client, job)
        owned.append((client, submitted))
        return submitted

    async def batch_waits() -> ClusterSnapshot | None:
        snap = await collector.refresh()
        return snap if snap.oldest_age_s[("openai", Priority.BATCH)] > 0.2 else None

    async with bare.client("acme") as acme, bare.client("globex") as globex:
        # A job waits with no worker: it is the queue's depth, and its age grows.
        waiting = await submit_as(acme, chat_job(priority="batch"))
        snap = await eventually(batch_waits, what="the waiting job's age")
        assert snap.queue_depth[("openai", Priority.BATCH)] == 1
        assert snap.queue_depth[standard] == 0
        assert (await acme.post(f"/v1/jobs/{waiting['id']}/cancel")).status_code == 200
        snap = await collector.refresh()
        assert snap.queue_depth[("openai", Priority.BATCH)] == 0
        assert snap.oldest_age_s[("openai", Priority.BATCH)] == 0.0

        # Two workers take two slow jobs each; one of them is killed mid-answer.
        mock.settings(chunk_count=20, chunk_delay_ms=100)
        victim = bare.start_worker(concurrency=2)
        bare.start_worker(concurrency=2)
        for client in (acme, acme, globex, acme):
            await submit_as(client, chat_job())

        async def all_running() -> bool:
            found = [await _record(c, j["id"]) for c, j in owned[1:]]
            return all(r["status"] == "running" for r in found)

        await eventually(all_running, what="four jobs running", timeout=15)
        victim.kill()
        bare.start_worker(concurrency=4)

        await submit_as(acme, {"endpoint": CHAT, "body": BAD_UPSTREAM})
        await submit_as(globex, {"endpoint": CHAT, "body": BAD_UPSTREAM})
        await submit_as(globex, chat_job())
        records = [(c, await _ended(c, j["id"])) for c, j in owned]

        async def settled() -> ClusterSnapshot:
            snap = await collector.refresh()
            assert snap.workers_alive == {"openai": 2, "gemini": 0}, "the killed one is silent"
            return snap

        snap = await eventually(settled, what="the killed worker reported silent", timeout=10)

    jobs = [r for _c, r in records]
    tenant_of = {id(r): ("acme" if c is acme else "globex") for c, r in records}
    assert Counter(r["status"] for r in jobs) == {"succeeded": 5, "failed": 2, "cancelled": 1}
    assert snap.jobs.submitted == Counter(("openai", r["priority"], r["model"]) for r in jobs)
    assert snap.jobs.started == {("openai", "gpt-4o-mini"): sum(r["attempts"] for r in jobs)}
    assert snap.jobs.finished == Counter(("openai", r["model"], r["status"]) for r in jobs)
    lost = [
        r
        for r in jobs
        if any(h.get("outcome") == "lease_expired" for h in r["attempt_history"] or [])
    ]
    assert len(lost) == 2, "the killed worker held two jobs"
    assert snap.jobs.redelivered == {"openai": len(lost)}

    tokens: Counter[tuple[str, str, TokenKind]] = Counter()
    cost: Counter[tuple[str, str]] = Counter()
    for r in jobs:
        if r["status"] != "succeeded":
            continue
        key = (r["model"], tenant_of[id(r)])
        tokens[(*key, TokenKind.PROMPT)] += r["usage"]["prompt_tokens"]
        tokens[(*key, TokenKind.COMPLETION)] += r["usage"]["completion_tokens"]
        cost[key] += r["cost_usd"]
    assert snap.tokens.tokens == tokens
    assert snap.tokens.cost_nano_usd.keys() == cost.keys()
    for key, usd in cost.items():
        assert snap.tokens.cost_nano_usd[key] / NANO_USD == pytest.approx(usd, abs=1e-8)
    acme_spent = sum(usd for (_m, tenant), usd in cost.items() if tenant == "acme")
    assert snap.budget_used == {("acme", "day"): pytest.approx(acme_spent / DAILY_USD)}

    assert snap.dead_letters == {"openai": 2, "gemini": 0}
    assert snap.queue_depth[standard] == 0
    assert snap.breakers["openai:gpt-4o-mini"] is BreakerGauge.CLOSED
