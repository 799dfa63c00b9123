"""Two accounts of one provider in one worker pool (docs/operations.md#accounts): each keeps its
own rate window and its own cool-down, and each call carries its account's endpoint and key.
A real API and worker process, real Redis and the mock over HTTP; the mock's log is the audit.

The accounts are two Azure OpenAI resources, ``/res-a`` and ``/res-b`` on the one mock, each
with its own key. Time is compressed: a "minute" lasts ``MINUTE_S`` seconds at the gateway.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.configs import TENANT_KEYS, config_tree
from tests.support.mock import MockControl
from tests.support.rate_audit import max_in_window
from tests.support.stack import Stack, running_stack

MINUTE_S = 3.0
KEY_A, KEY_B = "az-account-a-0123456789", "az-account-b-0123456789"
TRANSIT_S = 0.3
"""The gateway counts a call when a worker takes room, the mock when it arrives: on a loaded
machine the two moments are up to a few hundred milliseconds apart."""


def fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


def _account(name: str, mock_url: str, key_env: str) -> dict[str, Any]:
    return {
        "provider": "azure",
        "model": "gpt-4o",
        "account": name,
        "base_url": f"{mock_url}/res-{name}",
        "api_key": f"env:{key_env}",
        "rpm": 2,
    }


@pytest.fixture
def accounts_stack(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> Iterator[Stack]:
    tree = config_tree(
        redis_server.url,
        namespace,
        mock_root=mock.url,
        queue={"rate_limit_minute_s": MINUTE_S, "rate_limit_window_s": MINUTE_S},
    )
    tree["providers"]["azure"] = {
        "kind": "azure_openai",
        "base_url": f"{mock.url}/res-default",
        "api_version": "2024-10-21",
        "api_key": "env:ANYGATE_TEST_MOCK_KEY",
    }
    deployments = [_account("a", mock.url, "TEST_KEY_A"), _account("b", mock.url, "TEST_KEY_B")]
    tree["models"]["spread"] = {"strategy": "weighted", "deployments": deployments}
    tree["models"]["a-first"] = {"strategy": "ordered", "deployments": deployments}
    env = {"TEST_KEY_A": KEY_A, "TEST_KEY_B": KEY_B}
    with running_stack(tmp_path, tree, ["azure"], env=env) as stack:
        yield stack


def _client(stack: Stack) -> httpx.AsyncClient:
    headers = {"authorization": f"Bearer {TENANT_KEYS['acme']}"}
    return httpx.AsyncClient(base_url=stack.url, headers=headers, timeout=30)


async def _submit(http: httpx.AsyncClient, model: str, text: str) -> str:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    accepted = await http.post("/v1/jobs", json={"endpoint": "/v1/chat/completions", "body": body})
    assert accepted.status_code == 202, accepted.text
    job_id: str = accepted.json()["id"]
    return job_id


async def _finished(http: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job: dict[str, Any] = (await http.get(f"/v1/jobs/{job_id}", params={"wait": 5})).json()
        if job["status"] not in {"queued", "running"}:
            return job
    raise AssertionError(f"{job_id} never finished")


def _calls(mock: MockControl) -> list[dict[str, Any]]:
    return [r for r in mock.requests() if "/openai/deployments/" in r["path"]]


async def test_each_account_keeps_its_own_rate_window(
    accounts_stack: Stack, mock: MockControl
) -> None:
    async with _client(accounts_stack) as http:
        ids = [await _submit(http, "spread", f"job {i}") for i in range(5)]
        jobs = await asyncio.gather(*(_finished(http, i) for i in ids))
    assert [j["status"] for j in jobs] == ["succeeded"] * 5
    calls = sorted(_calls(mock), key=lambda r: r["arrived_at"])
    assert len(calls) == 5
    by_key = {
        fingerprint(KEY_A): [r for r in calls if r["path"].startswith("/res-a/")],
        fingerprint(KEY_B): [r for r in calls if r["path"].startswith("/res-b/")],
    }
    for key, mine in by_key.items():
        assert {r["key_fingerprint"] for r in mine} == {key}, "each account calls with its key"
        assert max_in_window(mine, MINUTE_S - TRANSIT_S) <= 2, "rpm 2 per account, each"
    assert sorted(len(mine) for mine in by_key.values()) == [2, 3]
    first = calls[0]["arrived_at"]
    # two accounts at rpm 2: four calls at once, the fifth a window later
    assert calls[3]["arrived_at"] - first < MINUTE_S / 2
    assert calls[4]["arrived_at"] - first >= MINUTE_S - TRANSIT_S


async def test_a_cool_down_on_one_account_leaves_the_other_serving(
    accounts_stack: Stack, mock: MockControl
) -> None:
    mock.fault(fault="429", path_contains="/res-a/", times=1, retry_after=3)
    async with _client(accounts_stack) as http:
        first = await _submit(http, "a-first", "first")
        deadline = time.monotonic() + 10
        while not any(r["status"] == 429 for r in _calls(mock)):
            assert time.monotonic() < deadline, "account a was never called"
            await asyncio.sleep(0.05)
        refused_at = time.time()
        second = await _submit(http, "a-first", "second")
        second_job = await _finished(http, second)
        served_in = time.time() - refused_at
        first_job = await _finished(http, first)
    assert second_job["status"] == first_job["status"] == "succeeded"
    assert served_in < 2.5, "account b answered while account a cooled down"
    calls = _calls(mock)
    refused = next(r for r in calls if r["status"] == 429)
    assert refused["path"].startswith("/res-a/")
    assert refused["key_fingerprint"] == fingerprint(KEY_A)
    later_a = [r for r in calls if r["path"].startswith("/res-a/") and r is not refused]
    assert all(r["arrived_at"] - refused["arrived_at"] >= 3 - TRANSIT_S for r in later_a), (
        "account a was left alone for its Retry-After"
    )
    served_by_b = [r for r in calls if r["path"].startswith("/res-b/")]
    assert served_by_b, "the second job went to account b"
    assert {r["key_fingerprint"] for r in served_by_b} == {fingerprint(KEY_B)}
