"""Batches under stress (issue 7): the control plane and a worker killed mid-batch, webhooks
that fail before they succeed, and interactive traffic beside a large batch
(docs/queue-semantics.md#dispatch-order-weights-and-fairness weights).
"""

from __future__ import annotations

import asyncio
import base64
import statistics
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import orjson
import pytest

from anygate.ops.embedded_redis import EmbeddedRedis
from anygate.workers.webhooks import verify
from tests.support.batches import (
    batch_line,
    batch_reaches,
    completed_lines,
    file_lines,
    jsonl,
    openai_sdk,
)
from tests.support.configs import TENANT_KEYS, config_tree
from tests.support.eventually import eventually
from tests.support.mock import MockControl
from tests.support.stack import Stack, running_stack
from tests.support.webhooks import refuse_first, webhook_receiver

WEBHOOK_SECRET = base64.b64encode(b"w" * 24).decode()


@pytest.fixture
def stack(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> Iterator[Stack]:
    secret_file = tmp_path / "webhook.secret"
    secret_file.write_text(WEBHOOK_SECRET)
    tree = config_tree(redis_server.url, namespace, mock_root=mock.url)
    tree["pools"] = {"openai": {"concurrency": 32}, "gemini": {"concurrency": 32}}
    tree["security"] = {"webhook_secret": f"file:{secret_file}"}
    with running_stack(tmp_path, tree, ["openai", "gemini"]) as s:
        s.start_control()
        yield s


async def test_killing_control_and_a_worker_mid_batch_loses_and_repeats_nothing(
    stack: Stack, mock: MockControl
) -> None:
    mock.settings(latency_ms=30)
    sdk = openai_sdk(stack)
    n = 3000
    uploaded = sdk.files.create(
        file=("r.jsonl", jsonl([batch_line(i) for i in range(n)])), purpose="batch"
    )
    batch = sdk.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    await batch_reaches(sdk, batch.id, {"in_progress"}, timeout=30)
    await eventually(
        lambda: completed_lines(sdk, batch.id) >= 200, what="200 lines done", timeout=60
    )
    stack.controls[0].kill()  # SIGKILL: no clean shutdown, its lock simply lapses
    stack.controls.clear()
    victim = next(w for w in stack.workers if stack.worker_pool[w.pid] == "openai")
    victim.kill()
    stack.workers.remove(victim)
    await asyncio.sleep(1.0)  # the point: a gap with neither control nor that worker running
    stack.start_worker(pool="openai", concurrency=32)
    stack.start_control()
    done = await batch_reaches(sdk, batch.id, {"completed", "failed"}, timeout=180)
    assert done.status == "completed"
    counts = done.request_counts
    assert counts is not None
    assert (counts.total, counts.completed, counts.failed) == (n, n, 0)
    ids = [o["custom_id"] for o in file_lines(sdk, done.output_file_id)]
    assert len(ids) == len(set(ids)), "no custom_id twice"
    assert set(ids) == {f"req-{i}" for i in range(n)}, "none missing"
    assert file_lines(sdk, done.error_file_id) == []


async def test_completion_webhook_is_signed_and_retried_until_delivered(stack: Stack) -> None:
    with webhook_receiver(refuse_first(2)) as receiver:
        sdk = openai_sdk(stack)
        uploaded = sdk.files.create(
            file=("r.jsonl", jsonl([batch_line(i) for i in range(5)])), purpose="batch"
        )
        batch = sdk.batches.create(
            input_file_id=uploaded.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            extra_body={"webhook_url": receiver.url},
        )
        await batch_reaches(sdk, batch.id, {"completed"}, timeout=60)
        await eventually(lambda: len(receiver.seen) >= 3, what="3 deliveries", timeout=30)
    assert len({d.delivery_id for d in receiver.seen}) == 1, "retries keep the delivery id"
    for d in receiver.seen:
        assert d.event == "batch.completed"
        assert verify(WEBHOOK_SECRET.encode(), d.body, d.headers["x-anygate-signature"])
        assert not verify(b"another secret", d.body, d.headers["x-anygate-signature"])
    payload = orjson.loads(receiver.seen[-1].body)
    assert payload["data"]["id"] == batch.id
    assert payload["data"]["request_counts"]["completed"] == 5


async def test_a_webhook_needs_a_configured_secret(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> None:
    tree = config_tree(redis_server.url, namespace, mock_root=mock.url)
    with running_stack(tmp_path, tree) as plain:
        sdk = openai_sdk(plain)
        uploaded = sdk.files.create(file=("r.jsonl", jsonl([batch_line(0)])), purpose="batch")
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.batches.create(
                input_file_id=uploaded.id,
                endpoint="/v1/chat/completions",
                completion_window="24h",
                extra_body={"webhook_url": "http://127.0.0.1:9/x"},
            )
    assert "webhook_secret" in str(refused.value)


async def test_interactive_calls_keep_their_latency_beside_a_20000_line_batch(
    stack: Stack, mock: MockControl
) -> None:
    """docs/queue-semantics.md#dispatch-order-weights-and-fairness: with interactive work waiting, a
    new interactive job waits for at most one free worker slot, however many batch jobs are queued.
    Measured as queue wait (started_at minus created_at of the interactive jobs) against one batch
    job's service time (the mock's 50 ms latency); printed, and asserted with generous bounds
    only."""
    mock.settings(latency_ms=50)
    sdk = openai_sdk(stack)
    lines = [batch_line(i, "gpt-4o-mini") for i in range(20_000)]
    uploaded = sdk.files.create(file=("big.jsonl", jsonl(lines)), purpose="batch")
    batch = sdk.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    # the batch has a deep backlog and the workers are saturated with it
    await eventually(
        lambda: completed_lines(sdk, batch.id) >= 200, what="200 lines done", timeout=60
    )
    waits: list[float] = []
    async with httpx.AsyncClient(
        base_url=stack.url,
        headers={"authorization": f"Bearer {TENANT_KEYS['globex']}"},
        timeout=30,
    ) as client:
        for i in range(30):
            question = {"role": "user", "content": f"now {i}"}
            answer = await client.post(
                "/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": [question]}
            )
            assert answer.status_code == 200
            job = (await client.get(f"/v1/jobs/{answer.headers['x-anygate-job-id']}")).json()
            waits.append(job["started_at"] - job["created_at"])
            await asyncio.sleep(0.05)  # the point: calls spread out, one at a time
    backlog = sdk.batches.retrieve(batch.id)
    sdk.batches.cancel(batch.id)
    median, worst = statistics.median(waits), max(waits)
    print(
        f"\ninteractive queue wait beside a 20,000-line batch: median {median * 1000:.1f} ms, "
        f"max {worst * 1000:.1f} ms (one batch job's service time: 50 ms upstream); batch "
        f"lines done meanwhile: {backlog.request_counts.completed if backlog.request_counts else 0}"
    )
    assert backlog.request_counts is not None
    assert backlog.request_counts.completed < 20_000, "the batch still had a backlog"
    assert median < 0.25
    assert worst < 1.0


async def test_a_jobs_webhook_is_delivered_signed_when_it_ends(stack: Stack) -> None:
    with webhook_receiver(refuse_first(2)) as receiver:
        async with httpx.AsyncClient(
            base_url=stack.url,
            headers={"authorization": f"Bearer {TENANT_KEYS['acme']}"},
            timeout=30,
        ) as client:
            submitted = await client.post(
                "/v1/jobs",
                json={
                    "endpoint": "/v1/chat/completions",
                    "body": batch_line(0)["body"],
                    "webhook_url": receiver.url,
                },
            )
            assert submitted.status_code == 202, submitted.text
        # two refusals, then delivered
        await eventually(lambda: len(receiver.seen) >= 3, what="3 deliveries", timeout=30)
    last = receiver.seen[-1]
    assert last.event == "job.succeeded"
    assert verify(WEBHOOK_SECRET.encode(), last.body, last.headers["x-anygate-signature"])
    payload = orjson.loads(last.body)
    assert payload["data"]["id"] == submitted.json()["id"]
    assert payload["data"]["result"]["object"] == "chat.completion"
