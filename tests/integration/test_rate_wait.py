"""Waiting on a rate limit (docs/performance.md "Waiting on a rate limit", rate_window.py): jobs
refused for room wait in the limit's line and come back one room at a time, so an admission costs
the same number of Redis script calls whether 50 or 300 jobs wait; the provider never sees more
than the limit in any window (audited from the mock's own log), the limit is used, and a waiting
job can still be cancelled, expire at its deadline, or outlive the worker that made it wait.

Time is compressed as in test_provider_limits_held.py: a "minute" of ``MINUTE_S`` seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.configs import config_tree
from tests.support.jobs import chat_job
from tests.support.mock import MockControl
from tests.support.rate_audit import max_in_window
from tests.support.stack import Stack, running_stack

MINUTE_S = 2.0
LIMIT = 40
"""Calls per (compressed) minute the gateway allows the deployment."""
PROVIDER_LIMIT = LIMIT + 3
"""The mock's own limit: a little headroom for the transit between taking room and arriving
(test_provider_limits_held.py's HEADROOM)."""


@pytest.fixture
def limited(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> Iterator[Stack]:
    tree = config_tree(
        redis_server.url,
        namespace,
        mock_root=mock.url,
        queue={"rate_limit_minute_s": MINUTE_S, "rate_limit_window_s": MINUTE_S},
    )
    tree["models"]["gpt-4o-mini"]["deployments"][0]["rpm"] = LIMIT
    mock.set_rate_limits(rpm=PROVIDER_LIMIT, window_s=MINUTE_S)
    with running_stack(tmp_path, tree) as stack:
        # two worker processes with many slots: every waiter due at one moment is claimed at
        # once, so a design that wakes them all would pay for each of them
        for _ in range(2):
            stack.start_worker(concurrency=64)
        yield stack


def _script_calls(url: str) -> int:
    stats = redis.Redis.from_url(url).info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("evalsha", "eval"))


async def _submit(client: httpx.AsyncClient, n: int, **extra: Any) -> list[str]:
    answers = await asyncio.gather(
        *(client.post("/v1/jobs", json=chat_job(f"job {i}", **extra)) for i in range(n))
    )
    assert all(a.status_code == 202 for a in answers), [a.text for a in answers][:3]
    return [str(a.json()["id"]) for a in answers]


async def _statuses(client: httpx.AsyncClient, ids: list[str], timeout_s: float) -> list[str]:
    """Each job's status once every one has ended (or the time is up)."""
    found: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for job_id in [j for j in ids if j not in found]:
            job = (await client.get(f"/v1/jobs/{job_id}")).json()
            if job["status"] not in {"queued", "running"}:
                found[job_id] = job["status"]
        if len(found) == len(ids):
            break
        await asyncio.sleep(0.5)
    return [found.get(j, "unfinished") for j in ids]


async def _run(stack: Stack, redis_url: str, mock: MockControl, waiting: int) -> float:
    """``LIMIT + waiting`` jobs at once: the script calls they took."""
    mock.reset()
    mock.set_rate_limits(rpm=PROVIDER_LIMIT, window_s=MINUTE_S)
    await asyncio.sleep(MINUTE_S * 1.1)  # the previous run's window is over
    before = _script_calls(redis_url)
    n = LIMIT + waiting
    async with stack.client() as client:
        ids = await _submit(client, n)
        statuses = await _statuses(client, ids, 60 + 2 * MINUTE_S * n / LIMIT)
    assert statuses == ["succeeded"] * n
    calls = _script_calls(redis_url) - before
    log = mock.requests()
    assert [r for r in log if r["status"] != 200] == [], "the provider never refused one"
    assert len(log) == n, "each job reached the provider once"
    assert max_in_window(log, MINUTE_S) <= PROVIDER_LIMIT
    # the limit was used: past the first window's burst, one window's worth per window
    arrivals = sorted(float(r["arrived_at"]) for r in log)
    span = arrivals[-1] - arrivals[0]
    assert span >= (n // LIMIT - 1) * MINUTE_S, "the limit paced the jobs"
    assert span <= 1.5 * (waiting / LIMIT) * MINUTE_S + 2 * MINUTE_S, "and was used fully"
    return calls


async def test_an_admission_costs_the_same_whether_50_or_300_jobs_wait(
    limited: Stack, redis_server: EmbeddedRedis, mock: MockControl
) -> None:
    at_once = await _run(limited, redis_server.url, mock, 0) / LIMIT  # a window's worth: no wait
    few = (await _run(limited, redis_server.url, mock, 50) - LIMIT * at_once) / 50
    many = (await _run(limited, redis_server.url, mock, 300) - LIMIT * at_once) / 300
    # a job admitted at once: enqueue, claim, ratewindow, finish (enqueues and finishes of one
    # loop turn share a call, so fewer than 4; and the workers' polls and heartbeats meanwhile);
    # a waiter: one more ratewindow, requeue and claim, and now and then a second round when the
    # waiter ahead of it came late (measured: 3.6 at once, 8.1 with 50 waiting, 8.4 with 300)
    assert many <= at_once + 6, (at_once, few, many)
    assert many <= few * 1.15 + 0.5, f"cost grows with the number waiting: {few} -> {many}"


async def test_a_waiting_job_can_be_cancelled_or_expire_at_its_deadline(
    limited: Stack, mock: MockControl
) -> None:
    async with limited.client() as client:
        ahead = await _submit(client, LIMIT * 2)  # a window's worth waits behind the first
        await asyncio.sleep(0.5)
        expiring = (await _submit(client, 1, deadline=time.time() + 1.5))[0]
        cancelled = (await _submit(client, 1))[0]
        await asyncio.sleep(0.7)
        waiting = (await client.get(f"/v1/jobs/{cancelled}")).json()
        assert waiting["status"] == "queued", "it waits for room"
        answer = await client.post(f"/v1/jobs/{cancelled}/cancel")
        assert answer.status_code == 200, answer.text
        # the deadline passes long before its turn (after 80 others, two windows away)
        expired = await _statuses(client, [expiring], 3.0)
        assert expired == ["expired"], "expired at its deadline, not when its turn came"
        rest = await _statuses(client, [*ahead, cancelled], 60)
    assert rest == ["succeeded"] * len(ahead) + ["cancelled"]
    asked = {r.get("content") for r in mock.requests()}
    assert len(mock.requests()) == len(ahead), f"neither reached the provider: {len(asked)}"
    assert max_in_window(mock.requests(), MINUTE_S) <= PROVIDER_LIMIT


async def test_jobs_waiting_on_a_limit_outlive_a_killed_worker(
    limited: Stack, mock: MockControl
) -> None:
    n = 200
    async with limited.client() as client:
        ids = await _submit(client, n)
        await asyncio.sleep(MINUTE_S * 1.5)  # jobs wait in line; some were refused by the victim
        limited.workers[0].kill()
        limited.workers.pop(0)
        statuses = await _statuses(client, ids, 90)
    assert statuses == ["succeeded"] * n
    log = mock.requests()
    assert [r for r in log if r["status"] != 200] == [], "the provider never refused one"
    assert max_in_window(log, MINUTE_S) <= PROVIDER_LIMIT
