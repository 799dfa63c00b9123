"""A streaming caller is never left in silence (docs/architecture.md, "Our own faults"): streams
send keep-alives while they wait, on both compatible surfaces and the job SSE; a worker that
dies is noticed within seconds (heartbeat-driven leases); a caller who has received nothing yet
is served by the redelivered attempt, one who has received chunks gets a clear error with the
job id at once.

Seen before: a streaming caller whose worker died heard nothing for 30 s (a whole visibility
timeout, with no byte on the wire), then got an error chunk; any proxy with a shorter idle
timeout cut it first."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import orjson
import pytest
from google import genai
from google.genai import types

from anygate.config import QueueConfig
from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.configs import TENANT_KEYS, config_tree
from tests.support.mock import MockControl
from tests.support.processes import ManagedProcess
from tests.support.stack import Stack, running_stack

KEY = TENANT_KEYS["acme"]
HEADERS = {"authorization": f"Bearer {KEY}"}
CHAT = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
KEEPALIVE_S = 0.4


@pytest.fixture
def lively(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> Iterator[Stack]:
    """An API that sends keep-alives after 0.4 s of silence, no worker yet (each test starts
    its own); leases of 3 s renewed every 0.5 s (the tests' config)."""
    tree = config_tree(redis_server.url, namespace, mock_root=mock.url)
    tree["server"] = {"keepalive_s": KEEPALIVE_S}
    with running_stack(tmp_path, tree) as stack:
        yield stack


def _lines(stack: Stack, url: str, body: dict[str, object]) -> tuple[list[tuple[float, str]], str]:
    """Every line of a streamed answer with the time it arrived, and the job id."""
    seen: list[tuple[float, str]] = []
    t0 = time.monotonic()
    with (
        httpx.Client(base_url=stack.url, headers=HEADERS, timeout=30) as client,
        client.stream("POST", url, json=body) as response,
    ):
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            seen.append((time.monotonic() - t0, line))
        return seen, response.headers["x-anygate-job-id"]


def test_the_defaults_notice_a_dead_worker_within_ten_seconds() -> None:
    q = QueueConfig()
    assert q.visibility_timeout_s + q.reclaim_interval_s <= 10
    assert q.heartbeat_interval_s * 3 <= q.visibility_timeout_s, "three beats per lease"


def test_a_slow_first_chunk_is_preceded_by_keepalives_openai(
    lively: Stack, mock: MockControl
) -> None:
    lively.start_worker()
    mock.settings(latency_ms=1500, chunk_count=3)
    seen, _job = _lines(lively, "/v1/chat/completions", CHAT)
    first_data = next(t for t, line in seen if line.startswith("data:"))
    keepalives = [t for t, line in seen if line == ": keep-alive" and t < first_data]
    assert len(keepalives) >= 2, seen
    assert keepalives[0] < KEEPALIVE_S + 0.5, "headers and a first keep-alive came early"
    assert [line for _t, line in seen if line][-1] == "data: [DONE]"
    # the official SDK reads such a stream unchanged
    client = openai.OpenAI(base_url=f"{lively.url}/v1", api_key=KEY, max_retries=0)
    chunks = list(client.chat.completions.create(**CHAT))  # type: ignore[call-overload]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_a_slow_first_chunk_is_preceded_by_keepalives_gemini(
    lively: Stack, mock: MockControl
) -> None:
    lively.start_worker()
    mock.settings(latency_ms=1500, chunk_count=3)
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    url = "/v1beta/models/gpt-4o-mini:streamGenerateContent?alt=sse"
    seen, _job = _lines(lively, url, body)
    first_data = next(t for t, line in seen if line.startswith("data:"))
    assert sum(1 for t, line in seen if line == "" and t < first_data) >= 2, seen
    # google-genai takes any line that is not `data:` for JSON: a bare line break is safe
    client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=lively.url))
    text = "".join(
        piece.text or ""
        for piece in client.models.generate_content_stream(model="gpt-4o-mini", contents="hi")
    )
    assert text


def test_a_job_event_stream_sends_keepalives_while_the_job_waits(lively: Stack) -> None:
    with httpx.Client(base_url=lively.url, headers=HEADERS, timeout=30) as client:
        body = {"endpoint": "/v1/chat/completions", "body": {**CHAT, "stream": False}}
        job = client.post("/v1/jobs", json=body).json()  # no worker: it stays queued
        t0 = time.monotonic()
        comments = 0
        with client.stream("GET", f"/v1/jobs/{job['id']}/events") as events:
            for line in events.iter_lines():
                comments += line == ": keep-alive"
                if comments == 2:
                    break
        assert time.monotonic() - t0 < 3 * KEEPALIVE_S + 1


def test_a_caller_with_nothing_yet_is_served_by_the_redelivered_attempt(
    lively: Stack, mock: MockControl
) -> None:
    victim = lively.start_worker()
    mock.settings(latency_ms=2000, chunk_count=5)
    with (
        httpx.Client(base_url=lively.url, headers=HEADERS, timeout=30) as client,
        client.stream("POST", "/v1/chat/completions", json=CHAT) as response,
    ):
        assert response.status_code == 200
        lines = response.iter_lines()
        assert next(lines) == ": keep-alive"  # waiting; the worker is still in its call
        victim.kill()
        lively.start_worker()
        rest = list(lines)
    data = [line.removeprefix("data: ") for line in rest if line.startswith("data:")]
    assert data[-1] == "[DONE]"
    assert not any('"error"' in d for d in data), "the retry was invisible to this caller"
    chunks = [orjson.loads(d) for d in data[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def _killed_mid_stream(
    stack: Stack, victim: ManagedProcess, then: Callable[[], object] = lambda: None
) -> tuple[str, list[str], float]:
    """Stream a chat, kill its worker after the first chunk, then ``then()``; the job id, the
    lines that came after the kill, and how long after it the stream ended."""
    with (
        httpx.Client(base_url=stack.url, headers=HEADERS, timeout=30) as client,
        client.stream("POST", "/v1/chat/completions", json=CHAT) as response,
    ):
        job_id = response.headers["x-anygate-job-id"]
        lines = response.iter_lines()
        while not next(lines).startswith("data:"):
            pass
        victim.kill()
        killed = time.monotonic()
        then()
        rest = list(lines)
        return job_id, rest, time.monotonic() - killed


def test_a_caller_with_chunks_gets_an_error_naming_the_job_within_seconds(
    lively: Stack, mock: MockControl
) -> None:
    victim = lively.start_worker()
    mock.settings(chunk_count=100, chunk_delay_ms=100)  # ten seconds of answer
    # a new worker's reclaim notices the dead worker's lapsed lease
    job_id, rest, told_after = _killed_mid_stream(lively, victim, then=lively.start_worker)
    errors = [orjson.loads(x.removeprefix("data: "))["error"] for x in rest if '"error"' in x]
    assert len(errors) == 1, rest
    assert job_id in errors[0]["message"]
    assert told_after < 3.0 + 1.5, f"the caller heard after {told_after:.1f} s"
    assert sum(1 for x in rest if x == ": keep-alive") >= 2, "and was not left in silence"
    job = httpx.get(
        f"{lively.url}/v1/jobs/{job_id}", headers=HEADERS, params={"wait": 30}, timeout=40
    )
    assert job.json()["status"] == "succeeded", "the job itself goes on and finishes"


def test_a_pool_whose_last_worker_died_is_reclaimed_by_the_control_plane(
    lively: Stack, mock: MockControl
) -> None:
    """No worker of the pool is left to notice: the control plane reclaims every pool's lapsed
    leases too, so the caller still hears within seconds, and the job waits at the front."""
    lively.start_control()
    victim = lively.start_worker()
    mock.settings(chunk_count=100, chunk_delay_ms=100)
    job_id, rest, told_after = _killed_mid_stream(lively, victim)
    assert any(job_id in x for x in rest if '"error"' in x), rest
    assert told_after < 3.0 + 2.0, f"the caller heard after {told_after:.1f} s"
    job = httpx.get(f"{lively.url}/v1/jobs/{job_id}", headers=HEADERS).json()
    assert job["status"] == "queued", "redelivered, waiting for a worker of its pool"
