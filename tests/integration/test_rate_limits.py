"""Deployment rate limits (docs/queue-semantics.md#provider-rate-limits, issue 5): a burst waits in
the queue and the upstream never sees more than the limit in any window, across two worker
processes; nobody sees a 429."""

from __future__ import annotations

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
WINDOW_S = 1.0
RPM = 600  # 10 per one-second window


@pytest.fixture
def limited(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> Iterator[Stack]:
    tree = config_tree(
        redis_server.url, namespace, mock_root=mock.url, queue={"rate_limit_window_s": WINDOW_S}
    )
    tree["models"]["gpt-4o-mini"]["deployments"][0]["rpm"] = RPM
    with running_stack(tmp_path, tree, ["openai", "openai"]) as stack:  # two worker processes
        yield stack


def test_a_burst_is_paced_to_the_limit_and_all_of_it_succeeds(
    limited: Stack, mock: MockControl
) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=limited.url, headers=HEADERS, timeout=10) as client:
        ids = [
            client.post("/v1/jobs", json={"endpoint": "/v1/chat/completions", "body": body})
            .raise_for_status()
            .json()["id"]
            for _ in range(35)
        ]
        deadline = time.monotonic() + 30
        pending = set(ids)
        while pending and time.monotonic() < deadline:
            for job_id in list(pending):
                job = client.get(f"/v1/jobs/{job_id}").json()
                assert job["status"] in {"queued", "running", "succeeded"}, job
                if job["status"] == "succeeded":
                    pending.discard(job_id)
            time.sleep(0.1)
    assert not pending, f"{len(pending)} jobs never finished"
    starts = sorted(r["started_at"] for r in mock.requests())
    assert len(starts) == 35, "each job reached the upstream exactly once (no 429, no retry)"
    per_window = int(RPM * WINDOW_S / 60)
    for i, first in enumerate(starts):
        in_window = sum(1 for t in starts[i:] if t < first + WINDOW_S)
        assert in_window <= per_window, f"{in_window} requests within {WINDOW_S} s of {first}"
    assert starts[-1] - starts[0] >= 3 * WINDOW_S * 0.9, "the burst was paced, not sent at once"


@pytest.fixture
def tiny_tpm(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> Iterator[Stack]:
    tree = config_tree(
        redis_server.url, namespace, mock_root=mock.url, queue={"rate_limit_window_s": WINDOW_S}
    )
    tree["models"]["gpt-4o-mini"]["deployments"][0]["tpm"] = 6000  # 100 tokens per window
    with running_stack(tmp_path, tree, ["openai"]) as stack:
        yield stack


def test_a_request_larger_than_a_whole_window_fails_at_once(
    tiny_tpm: Stack, mock: MockControl
) -> None:
    body = {
        "model": "gpt-4o-mini",
        "max_tokens": 500,
        "messages": [{"role": "user", "content": "hi"}],
    }
    with httpx.Client(base_url=tiny_tpm.url, headers=HEADERS, timeout=10) as client:
        answer = client.post("/v1/chat/completions", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "request_too_large"
    assert "tokens" in answer.json()["error"]["message"]
    assert mock.requests() == [], "the upstream never saw it"
