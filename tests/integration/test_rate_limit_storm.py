"""A 429 storm (docs/architecture.md, "Pauses of the provider"): after each cool-down one call
tests the storm first and the others follow its verdict, ramping up with jitter, so upstream
calls during a storm stay within a small multiple of its length ÷ Retry-After; a job that waited
out the storm's cool-downs is never failed by it, unless its deadline passes.

Seen before these fixes: after each cool-down every slot called at once (a 20 s storm with
``Retry-After: 2`` cost 453 wasted calls in bursts of ~50), and a job failed after 13 429s."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.configs import TENANT_KEYS, config_tree
from tests.support.mock import MockControl
from tests.support.stack import Stack, running_stack

HEADERS = {"authorization": f"Bearer {TENANT_KEYS['acme']}"}
STORM_S = 6.0
RETRY_AFTER_S = 1.0
SLOTS = 16


@pytest.fixture
def storm_stack(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> Iterator[Stack]:
    """Two workers of eight slots each on one deployment with no fallback; a job may wait out
    only one cool-down before, as it was, a 429 counted as a failure."""
    tree = config_tree(
        redis_server.url,
        namespace,
        mock_root=mock.url,
        queue={"max_cool_downs": 1, "attempts_per_deployment": 2, "resume_ramp_s": 1.0},
    )
    with running_stack(tmp_path, tree) as stack:
        stack.start_worker(concurrency=SLOTS // 2)
        stack.start_worker(concurrency=SLOTS // 2)
        yield stack


def _job(i: int, **extra: object) -> dict[str, object]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"storm {i}"}]}
    return {"endpoint": "/v1/chat/completions", "body": body, **extra}


async def test_a_429_storm_costs_few_calls_and_fails_no_job(
    storm_stack: Stack, mock: MockControl
) -> None:
    mock.settings(latency_ms=50)
    mock.fault(fault="429", retry_after=RETRY_AFTER_S, model="gpt-4o-mini")
    storm_began = time.time()
    async with httpx.AsyncClient(base_url=storm_stack.url, headers=HEADERS, timeout=30) as client:
        ids = [(await client.post("/v1/jobs", json=_job(i))).json()["id"] for i in range(40)]
        late = (await client.post("/v1/jobs", json=_job(99, deadline=time.time() + 2))).json()
        await asyncio.sleep(max(0.0, storm_began + STORM_S - time.time()))
        mock.clear_faults()
        storm_ended = time.time()
        jobs = [
            (await client.get(f"/v1/jobs/{job_id}", params={"wait": 30})).json()
            for job_id in [*ids, late["id"]]
        ]
    calls = [r for r in mock.requests() if storm_began <= r["started_at"] < storm_ended]
    refused = [r for r in calls if r["status"] == 429]
    # the slots that were calling when the storm began, then about one test call per cool-down
    budget = SLOTS + 3 * STORM_S / RETRY_AFTER_S
    assert len(calls) <= budget, f"{len(calls)} upstream calls in a {STORM_S:g} s storm"
    assert refused, "the storm was met"
    statuses = [j["status"] for j in jobs]
    assert statuses[:-1] == ["succeeded"] * 40, [j.get("error") for j in jobs if j["error"]]
    assert statuses[-1] == "expired", "a job whose deadline passed in the storm expires"
    assert all(j["attempts"] == 1 for j in jobs[:-1]), "a 429 spends no attempt"
