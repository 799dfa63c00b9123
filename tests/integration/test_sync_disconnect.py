"""A streaming caller that leaves mid-answer (docs/api.md#openai-compatible-surface:
``server.cancel_on_disconnect``).

The relay learns of the disconnect from the call's own watcher (there is no per-stream listener
task): with ``always`` the job is cancelled and the upstream call aborted; with the default
``before_stream`` the job finishes and its result can be fetched later.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.configs import TENANT_KEYS, config_tree
from tests.support.mock import MockControl
from tests.support.stack import Stack, running_stack

HEADERS = {"authorization": f"Bearer {TENANT_KEYS['acme']}"}
CHAT = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


def _stack(tmp_path: Path, redis_url: str, namespace: str, mock: MockControl, policy: str) -> Any:
    tree = config_tree(redis_url, namespace, mock_root=mock.url)
    tree.setdefault("server", {})["cancel_on_disconnect"] = policy
    return running_stack(tmp_path, tree, ["openai"])


@pytest.fixture(params=["always", "before_stream"])
def policy_stack(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    redis_server: EmbeddedRedis,
    namespace: str,
    mock: MockControl,
) -> Iterator[tuple[str, Stack]]:
    with _stack(tmp_path, redis_server.url, namespace, mock, request.param) as stack:
        yield request.param, stack


def _leave_after_first_chunk(stack: Stack) -> str:
    with (
        httpx.Client(base_url=stack.url, headers=HEADERS, timeout=10) as client,
        client.stream("POST", "/v1/chat/completions", json=CHAT) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data:"):
                break
        return response.headers["x-anygate-job-id"]  # leaving the block closes the socket


def _final(stack: Stack, job_id: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = httpx.get(f"{stack.url}/v1/jobs/{job_id}", headers=HEADERS).json()
        if job["status"] in {"succeeded", "failed", "cancelled"} or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def test_a_caller_leaving_mid_stream_follows_the_policy(
    policy_stack: tuple[str, Stack], mock: MockControl
) -> None:
    policy, stack = policy_stack
    mock.settings(chunk_count=40, chunk_delay_ms=50)  # two seconds of answer
    started = time.monotonic()
    job_id = _leave_after_first_chunk(stack)
    job = _final(stack, job_id)
    if policy == "always":
        assert job["status"] == "cancelled"
        assert job["error"]["code"] == "client_disconnected"
        assert time.monotonic() - started < 1.5, "the upstream call was not aborted"
        (upstream,) = mock.requests()
        assert upstream["aborted"], "the worker kept the upstream stream open"
    else:
        assert job["status"] == "succeeded"
        text = job["result"]["choices"][0]["message"]["content"]
        assert text, "the job's result holds the whole answer"
