"""A deployment that asks for a pause or keeps failing, end to end
(docs/queue-semantics.md#retries-and-failover, issue 5): an upstream 429 pauses only that deployment
for its Retry-After, without spending attempts; a deployment failing every call opens its breaker,
traffic moves to the fallback, and after the cool-down one probe closes it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.configs import FAILING_MODEL, MOCK_KEY_ENV, TENANT_KEYS, config_tree
from tests.support.eventually import eventually
from tests.support.mock import MockControl
from tests.support.stack import Stack, running_stack

HEADERS = {"authorization": f"Bearer {TENANT_KEYS['acme']}"}


def _chat(model: str, text: str = "hi") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}]}


@pytest.fixture
def duo(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> Iterator[Stack]:
    """One alias over two deployments, each its own account (provider) and worker pool."""
    tree = config_tree(redis_server.url, namespace, mock_root=mock.url)
    tree["providers"]["openai_b"] = {
        "kind": "openai",
        "base_url": f"{mock.url}/v1",
        "api_key": f"env:{MOCK_KEY_ENV}",
    }
    tree["models"]["duo"] = {
        "strategy": "weighted",
        "deployments": [
            {"provider": "openai", "model": "gpt-a"},
            {"provider": "openai_b", "model": "gpt-b"},
        ],
    }
    with running_stack(tmp_path, tree, ["openai", "openai_b"]) as stack:
        yield stack


async def test_a_429_pauses_only_its_deployment_for_its_retry_after(
    duo: Stack, mock: MockControl
) -> None:
    mock.fault(fault="429", retry_after=2, model="gpt-a", times=1)
    async with httpx.AsyncClient(base_url=duo.url, headers=HEADERS, timeout=30) as client:

        async def one() -> httpx.Response:
            return await client.post("/v1/chat/completions", json=_chat("duo"))

        answers: list[asyncio.Task[httpx.Response]] = []
        for _ in range(40):  # a steady stream over ~4 s
            answers.append(asyncio.create_task(one()))
            await asyncio.sleep(0.1)  # the point: a steady stream, not one burst
        done = await asyncio.gather(*answers)
        assert [a.status_code for a in done] == [200] * 40, "no client saw the 429"
        jobs = [
            (await client.get(f"/v1/jobs/{a.headers['x-anygate-job-id']}")).json() for a in done
        ]
    assert all(j["attempts"] == 1 for j in jobs), "the 429 did not use up an attempt"
    log = sorted(mock.requests(), key=lambda r: r["started_at"])
    refused = [r for r in log if r["status"] == 429]
    assert len(refused) == 1
    assert refused[0]["model"] == "gpt-a"
    t0 = refused[0]["started_at"]
    a_after = [r["started_at"] - t0 for r in log if r["model"] == "gpt-a" and r["started_at"] > t0]
    b_during = [r for r in log if r["model"] == "gpt-b" and t0 < r["started_at"] < t0 + 1.9]
    assert a_after, "gpt-a served again after its pause"
    assert min(a_after) >= 1.9, f"gpt-a was called {min(a_after):.2f} s after its 429"
    assert min(a_after) < 3.0, "and soon after the pause ended"
    assert len(b_during) >= 8, "the other deployment kept serving meanwhile"


@contextlib.contextmanager
def _queue_stack(
    tmp_path: Path,
    redis_url: str,
    namespace: str,
    mock: MockControl,
    queue: dict[str, Any],
    pools: list[str],
) -> Iterator[Stack]:
    """A stack whose queue settings (breaker, attempts) the test chooses."""
    tree = config_tree(redis_url, namespace, mock_root=mock.url, queue=queue)
    with running_stack(tmp_path, tree, pools) as stack:
        yield stack


@pytest.fixture
def fragile(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> Iterator[Stack]:
    queue = {
        "attempts_per_deployment": 1,
        "breaker": {"consecutive_failures": 3, "cooldown_s": 1.5, "min_calls": 1000},
    }
    with _queue_stack(
        tmp_path, redis_server.url, namespace, mock, queue, ["openai", "gemini"]
    ) as stack:
        yield stack


def _primary_calls(mock: MockControl) -> int:
    return sum(1 for r in mock.requests() if r["model"] == FAILING_MODEL)


async def test_a_failing_deployment_opens_its_breaker_and_one_probe_closes_it(
    fragile: Stack, mock: MockControl
) -> None:
    mock.fault(fault="500", model=FAILING_MODEL)
    async with httpx.AsyncClient(base_url=fragile.url, headers=HEADERS, timeout=30) as client:
        for _ in range(3):  # each one fails on the primary and is answered by the fallback
            assert (await client.post("/v1/chat/completions", json=_chat("resilient"))).is_success
        assert _primary_calls(mock) == 3
        opened_at = time.monotonic()
        for _ in range(4):  # the breaker is open: straight to the fallback
            answer = await client.post("/v1/chat/completions", json=_chat("resilient"))
            assert answer.is_success
        assert _primary_calls(mock) == 3, "no call reached the open deployment"
        job = (await client.get(f"/v1/jobs/{answer.headers['x-anygate-job-id']}")).json()
        assert job["provider"] == "gemini"

        httpx.delete(f"{mock.url}/_mock/faults").raise_for_status()  # the primary recovers
        mock.settings(latency_ms=300)
        # the point: the breaker's cool-down runs its length before the burst
        await asyncio.sleep(max(0.0, opened_at + 1.6 - time.monotonic()))
        burst = await asyncio.gather(
            *(client.post("/v1/chat/completions", json=_chat("resilient")) for _ in range(5))
        )
        assert all(a.is_success for a in burst)
        assert _primary_calls(mock) == 4, "exactly one probe while half-open"
        mock.settings(latency_ms=0)
        for _ in range(3):  # closed again: the primary serves
            assert (await client.post("/v1/chat/completions", json=_chat("resilient"))).is_success
        assert _primary_calls(mock) == 7


@pytest.fixture
def fragile_alone(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> Iterator[Stack]:
    queue = {
        "attempts_per_deployment": 1,
        "breaker": {"consecutive_failures": 2, "cooldown_s": 30, "min_calls": 1000},
    }
    with _queue_stack(tmp_path, redis_server.url, namespace, mock, queue, ["openai"]) as stack:
        yield stack


async def test_with_no_fallback_an_open_breaker_answers_a_synchronous_call_503_at_once(
    fragile_alone: Stack, mock: MockControl
) -> None:
    """Only a synchronous caller gets a fast answer, and a retryable one: 503 with Retry-After
    and its job id (the SDKs retry it after Retry-After; no x-should-retry: false)."""
    mock.fault(fault="500", model="gpt-4o-mini")
    async with httpx.AsyncClient(base_url=fragile_alone.url, headers=HEADERS, timeout=30) as client:
        for _ in range(2):
            failed = await client.post("/v1/chat/completions", json=_chat("gpt-4o-mini"))
            assert failed.status_code == 502
        before = len(mock.requests())
        t0 = time.monotonic()
        fast = await client.post("/v1/chat/completions", json=_chat("gpt-4o-mini"))
        assert time.monotonic() - t0 < 2.0
        assert fast.status_code == 503
        assert fast.json()["error"]["code"] == "circuit_open"
        assert 25 <= int(fast.headers["retry-after"]) <= 30, "the breaker's cool-down is left"
        assert fast.headers.get("x-should-retry") != "false"
        job = (await client.get(f"/v1/jobs/{fast.headers['x-anygate-job-id']}")).json()
        assert job["error"]["code"] == "circuit_open"
        assert len(mock.requests()) == before, "the open deployment was not called"


@pytest.fixture
def patient(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> Iterator[Stack]:
    """One deployment, no fallback; a breaker that opens after 3 failures for 2 s."""
    queue = {
        "attempts_per_deployment": 5,
        "breaker": {"consecutive_failures": 3, "cooldown_s": 2.0, "min_calls": 1000},
        "resume_ramp_s": 0.8,
    }
    with _queue_stack(tmp_path, redis_server.url, namespace, mock, queue, ["openai"]) as stack:
        yield stack


async def test_queued_jobs_wait_out_an_open_breaker_and_all_succeed(
    patient: Stack, mock: MockControl
) -> None:
    """A queue exists so that work waits: with the breaker open and no fallback, queued jobs
    are neither failed nor dispatched; after the cool-down one probe goes first, the others
    follow its verdict gradually, and every job succeeds without spending an attempt."""
    mock.fault(fault="500", model="gpt-4o-mini", times=3)  # exactly enough to open it
    async with httpx.AsyncClient(base_url=patient.url, headers=HEADERS, timeout=30) as client:
        first = (
            await client.post(
                "/v1/jobs", json={"endpoint": "/v1/chat/completions", "body": _chat("gpt-4o-mini")}
            )
        ).json()
        await eventually(
            lambda: _attempts(client, first["id"], at_least=3),
            what="the first job's three failures",
            timeout=10,
        )
        opened = time.time()  # the mock logs wall-clock times
        mock.settings(latency_ms=200)  # each call takes a while: the probe's is seen alone
        ids = [first["id"]]
        for i in range(30):
            body = {"endpoint": "/v1/chat/completions", "body": _chat("gpt-4o-mini", f"q{i}")}
            ids.append((await client.post("/v1/jobs", json=body)).json()["id"])
        await asyncio.sleep(1.0)  # the point: a window in which the open breaker calls nothing
        assert all(r["status"] == 500 for r in mock.requests()), "nothing called while open"
        jobs = [
            (await client.get(f"/v1/jobs/{job_id}", params={"wait": 20})).json() for job_id in ids
        ]
    assert [j["status"] for j in jobs] == ["succeeded"] * 31
    assert all(j["attempts"] == 1 for j in jobs[1:]), "waiting spent no attempt"
    resumed = sorted(r["started_at"] for r in mock.requests() if r["status"] == 200)
    assert 1.5 <= resumed[0] - opened <= 4.0, "no call before the cool-down ended, then soon"
    assert resumed[1] - resumed[0] >= 0.2, "the probe went alone first, and was answered"
    assert resumed[-1] - resumed[0] > 0.2, "then gradually, not every slot at once"


@pytest.fixture
def stubborn(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> Iterator[Stack]:
    queue = {"attempts_per_deployment": 1, "max_cool_downs": 2}
    with _queue_stack(
        tmp_path, redis_server.url, namespace, mock, queue, ["openai", "gemini"]
    ) as stack:
        yield stack


async def test_a_deployment_that_keeps_answering_429_cannot_hold_a_job_forever(
    stubborn: Stack, mock: MockControl
) -> None:
    mock.fault(fault="429", retry_after=0.1, model=FAILING_MODEL)
    async with httpx.AsyncClient(base_url=stubborn.url, headers=HEADERS, timeout=30) as client:
        answer = await client.post("/v1/chat/completions", json=_chat("resilient"))
        assert answer.status_code == 200
        job = (await client.get(f"/v1/jobs/{answer.headers['x-anygate-job-id']}")).json()
    assert job["provider"] == "gemini", "after two waits the 429 counted, and the route moved on"
    assert _primary_calls(mock) == 3
    assert [h["outcome"] for h in job["attempt_history"]] == ["fall_back"]


async def test_an_account_out_of_credit_moves_to_the_fallback_at_once(
    stubborn: Stack, mock: MockControl
) -> None:
    # OpenAI's "no credit left" is a 429 too, but waiting will not help
    mock.fault(fault="429", model=FAILING_MODEL, code="insufficient_quota")
    async with httpx.AsyncClient(base_url=stubborn.url, headers=HEADERS, timeout=30) as client:
        answer = await client.post("/v1/chat/completions", json=_chat("resilient"))
        assert answer.status_code == 200
    assert _primary_calls(mock) == 1


async def _attempts(client: httpx.AsyncClient, job_id: str, *, at_least: int) -> bool:
    return int((await client.get(f"/v1/jobs/{job_id}")).json()["attempts"]) >= at_least
