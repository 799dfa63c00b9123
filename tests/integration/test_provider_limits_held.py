"""The provider never sees more than its limit, however hard the gateway is pushed
(docs/queue-semantics.md, issue 5), audited from the mock's own log: every request it received
counts, refused or not.

Time is compressed: the mock enforces "60 requests and 10,000 tokens per minute" over a minute
of ``MINUTE_S`` seconds, and the gateway counts the same minute (``queue.rate_limit_minute_s``),
so 500 jobs take seconds rather than the eight minutes they would at 60 per real minute.
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
from tests.support.configs import MOCK_KEY_ENV, TENANT_KEYS, config_tree
from tests.support.mock import MockControl
from tests.support.rate_audit import max_in_window
from tests.support.stack import Stack, running_stack

MINUTE_S = 2.0
RPM, TPM = 60, 10_000
HEADROOM = 3
"""Calls per minute the gateway's limits keep in hand below the mock's, as an operator keeps a
little below a provider's (docs/queue-semantics.md#provider-rate-limits): the gateway counts a
call when a worker takes room, the mock when the call arrives, and the transit between them
(milliseconds; up to ~100 ms on a loaded 2-core machine) is a thousandth of a real minute but a
twentieth of this compressed one, where it can carry one window's first call into the next."""
GATEWAY_RPM, GATEWAY_TPM = RPM - HEADROOM, TPM - HEADROOM * 160  # 160 tokens a call here
KEYS = {**TENANT_KEYS, "initech": "sk-test-initech-0123456789"}


def _tree(redis_url: str, namespace: str, mock_url: str) -> dict[str, Any]:
    tree = config_tree(
        redis_url,
        namespace,
        mock_root=mock_url,
        queue={"rate_limit_minute_s": MINUTE_S, "rate_limit_window_s": MINUTE_S},
    )
    tree["tenants"].append(
        {"id": "initech", "api_key_sha256": [hashlib.sha256(KEYS["initech"].encode()).hexdigest()]}
    )
    return tree


def _body(tenant: str, i: int) -> dict[str, Any]:
    # initech's requests reserve far more than they use (max_tokens), which only the
    # settlement to real usage gives back
    extra = {"max_tokens": 900} if tenant == "initech" else {}
    text = f"job {i} of {tenant}: " + "lorem ipsum " * (i % 7)
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


async def _submit_and_wait(
    url: str, jobs: list[tuple[str, dict[str, Any]]]
) -> list[dict[str, Any]]:
    clients = {
        t: httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {k}"}, timeout=30)
        for t, k in KEYS.items()
    }
    try:
        accepted = await asyncio.gather(
            *(
                clients[t].post("/v1/jobs", json={"endpoint": "/v1/chat/completions", "body": b})
                for t, b in jobs
            )
        )
        assert all(a.status_code == 202 for a in accepted), "every job was accepted"
        pending = {a.json()["id"]: t for a, (t, _b) in zip(accepted, jobs, strict=True)}
        finished: list[dict[str, Any]] = []
        deadline = time.monotonic() + 120
        while pending and time.monotonic() < deadline:
            for job_id, tenant in list(pending.items()):
                job = (await clients[tenant].get(f"/v1/jobs/{job_id}", params={"wait": 5})).json()
                assert job["status"] in {"queued", "running", "succeeded"}, job
                if job["status"] == "succeeded":
                    finished.append(job)
                    del pending[job_id]
        assert not pending, f"{len(pending)} jobs never finished"
        return finished
    finally:
        for client in clients.values():
            await client.aclose()


@pytest.fixture
def one_key(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> Iterator[Stack]:
    tree = _tree(redis_server.url, namespace, mock.url)
    dep = tree["models"]["gpt-4o-mini"]["deployments"][0]
    dep.update(rpm=GATEWAY_RPM, tpm=GATEWAY_TPM)
    with running_stack(tmp_path, tree, ["openai", "openai"]) as stack:  # two worker processes
        yield stack


async def test_500_jobs_from_3_tenants_never_exceed_the_providers_limits(
    one_key: Stack, mock: MockControl
) -> None:
    mock.settings(prompt_tokens=120, completion_tokens=40)
    mock.set_rate_limits(rpm=RPM, tpm=TPM, window_s=MINUTE_S)
    jobs = [(tenant, _body(tenant, i)) for i in range(167) for tenant in KEYS][:500]
    finished = await _submit_and_wait(one_key.url, jobs)
    assert len(finished) == 500
    assert all(job["attempts"] == 1 for job in finished), "no retry was needed"
    log = mock.requests()
    assert len(log) == 500, "each job reached the provider exactly once"
    assert [r for r in log if r["status"] != 200] == [], "the provider never refused one"
    assert max_in_window(log, MINUTE_S) <= RPM
    assert max_in_window(log, MINUTE_S, tokens=True) <= TPM
    # and the limit was what paced it: 500 requests at 60 per minute take 8 minutes or more
    arrivals = sorted(r["arrived_at"] for r in log)
    assert arrivals[-1] - arrivals[0] >= (500 // RPM - 1) * MINUTE_S


@pytest.fixture
def two_deployments(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> Iterator[Stack]:
    tree = _tree(redis_server.url, namespace, mock.url)
    tree["providers"]["openai_b"] = {
        "kind": "openai",
        "base_url": f"{mock.url}/v1",
        "api_key": f"env:{MOCK_KEY_ENV}",
    }
    tree["models"]["gpt-4o-mini"] = {
        "strategy": "weighted",
        "deployments": [
            {"provider": "openai", "model": "gpt-a", "rpm": GATEWAY_RPM, "tpm": GATEWAY_TPM},
            {"provider": "openai_b", "model": "gpt-b", "rpm": GATEWAY_RPM, "tpm": GATEWAY_TPM},
        ],
    }
    pools = ["openai", "openai", "openai_b", "openai_b"]  # two worker processes per deployment
    with running_stack(tmp_path, tree, pools) as stack:
        yield stack


async def test_limits_hold_globally_across_processes_and_deployments(
    two_deployments: Stack, mock: MockControl
) -> None:
    mock.settings(prompt_tokens=100, completion_tokens=20)
    mock.set_rate_limits(rpm=RPM, tpm=TPM, window_s=MINUTE_S, per_model=True)
    jobs = [(tenant, _body(tenant, i)) for i in range(80) for tenant in KEYS][:240]
    finished = await _submit_and_wait(two_deployments.url, jobs)
    assert len(finished) == 240
    log = mock.requests()
    assert [r for r in log if r["status"] != 200] == [], "the provider never refused one"
    for model in ("gpt-a", "gpt-b"):
        served = [r for r in log if r["model"] == model]
        assert len(served) >= 60, f"{model} took its share"
        assert max_in_window(served, MINUTE_S) <= RPM, model
        assert max_in_window(served, MINUTE_S, tokens=True) <= TPM, model
