"""OpenAI's Batch API on the broker, run by the arq control plane (docs/api.md#files-and-batches,
docs/queue-semantics.md#dispatch-order-weights-and-fairness; issue 7).

The official ``openai`` SDK drives it unchanged: ``files.create(purpose="batch")``,
``batches.create/retrieve/list/cancel``, ``files.content``. A real stack: API, one worker per
provider, ``anygate control``, the mock provider over HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from anygate.ops.embedded_redis import EmbeddedRedis
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


@pytest.fixture
def batch_stack(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    redis_server: EmbeddedRedis,
    namespace: str,
    mock: MockControl,
) -> Iterator[Stack]:
    """``request.param``: how long "24h" lasts (default 120 s; the expiry test shortens it)."""
    tree = config_tree(redis_server.url, namespace, mock_root=mock.url)
    tree["pools"] = {"openai": {"concurrency": 16}, "gemini": {"concurrency": 16}}
    tree["batches"] = {"day_s": getattr(request, "param", 120)}
    with running_stack(tmp_path, tree, ["openai", "gemini"]) as stack:
        stack.start_control()
        yield stack


async def test_sdk_runs_a_mixed_1000_line_batch_with_bad_lines_tocompleted_lines(
    batch_stack: Stack,
) -> None:
    lines = [batch_line(i) for i in range(995)]
    bad = [
        batch_line(995, url="/v1/images/generations"),
        batch_line(996, model="no-such-model"),
        batch_line(997, method="GET"),
        batch_line(998, body="not an object"),
        batch_line(999, body={"model": "gpt-4o-mini"}),  # no messages
    ]
    sdk = openai_sdk(batch_stack)
    uploaded = sdk.files.create(file=("requests.jsonl", jsonl(lines + bad)), purpose="batch")
    batch = sdk.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"run": "nightly"},
    )
    assert batch.status in {"validating", "in_progress"}
    done = await batch_reaches(sdk, batch.id, {"completed", "failed"}, timeout=120)
    assert done.status == "completed"
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed) == (1000, 995)
    assert done.request_counts.failed == 5
    assert done.metadata == {"run": "nightly"}
    outputs = file_lines(sdk, done.output_file_id)
    ids = [o["custom_id"] for o in outputs]
    assert sorted(ids) == sorted(f"req-{i}" for i in range(995)), "each good line once"
    for out in outputs:
        assert out["response"]["status_code"] == 200
        assert out["response"]["body"]["object"] == "chat.completion"
        assert out["response"]["body"]["choices"][0]["message"]["content"]
        assert out["error"] is None
    by_model = {o["response"]["body"]["model"] for o in outputs}
    assert len(by_model) == 2, f"both providers answered: {by_model}"
    errors = file_lines(sdk, done.error_file_id)
    assert sorted(e["custom_id"] for e in errors) == [f"req-{i}" for i in range(995, 1000)]
    assert done.usage is not None
    listed = sdk.batches.list(limit=10)
    assert batch.id in [b.id for b in listed.data]


async def test_cancel_mid_batch_stops_queued_lines_and_keeps_finished_ones(
    batch_stack: Stack, mock: MockControl
) -> None:
    mock.settings(latency_ms=100)
    sdk = openai_sdk(batch_stack)
    uploaded = sdk.files.create(
        file=("r.jsonl", jsonl([batch_line(i, "gpt-4o-mini") for i in range(400)])), purpose="batch"
    )
    batch = sdk.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    await batch_reaches(sdk, batch.id, {"in_progress"}, timeout=30)
    await eventually(
        lambda: completed_lines(sdk, batch.id) >= 20, what="20 lines of the batch done", timeout=30
    )
    cancelling = sdk.batches.cancel(batch.id)
    assert cancelling.status == "cancelling"
    cancelled = await batch_reaches(sdk, batch.id, {"cancelled"}, timeout=30)
    calls_at_end = len(mock.requests())
    await asyncio.sleep(1.0)  # the point: a window in which no further call may come
    assert len(mock.requests()) == calls_at_end, "no upstream call after the batch ended"
    assert calls_at_end < 400, "queued lines were never sent"
    counts = cancelled.request_counts
    assert counts is not None
    assert counts.total == 400
    assert counts.completed + counts.failed == 400
    outputs = file_lines(sdk, cancelled.output_file_id)
    assert len(outputs) == counts.completed >= 20
    errors = file_lines(sdk, cancelled.error_file_id)
    assert len(errors) == counts.failed
    assert {e["error"]["code"] for e in errors} <= {"batch_cancelled"}


@pytest.mark.parametrize("batch_stack", [6], indirect=True)
async def test_a_batch_whose_window_elapses_is_expired_with_finished_lines_kept(
    batch_stack: Stack, mock: MockControl
) -> None:
    mock.settings(latency_ms=400)
    batch_stack.stop_workers("gemini")  # its lines can only wait: they must expire
    sdk = openai_sdk(batch_stack)
    uploaded = sdk.files.create(
        file=("r.jsonl", jsonl([batch_line(i) for i in range(40)])), purpose="batch"
    )
    batch = sdk.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    expired = await batch_reaches(sdk, batch.id, {"expired"}, timeout=60)
    counts = expired.request_counts
    assert counts is not None
    assert counts.total == 40
    assert counts.completed == 20, "every OpenAI-backed line finished in time"
    outputs = file_lines(sdk, expired.output_file_id)
    assert {o["response"]["body"]["model"] for o in outputs} == {"gpt-4o-mini"}
    errors = file_lines(sdk, expired.error_file_id)
    assert len(errors) == 20
    assert {e["error"]["code"] for e in errors} == {"batch_expired"}


async def test_another_tenants_batch_is_not_found(batch_stack: Stack) -> None:
    sdk = openai_sdk(batch_stack)
    uploaded = sdk.files.create(file=("r.jsonl", jsonl([batch_line(0)])), purpose="batch")
    batch = sdk.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    other = openai.OpenAI(
        base_url=f"{batch_stack.url}/v1", api_key=TENANT_KEYS["globex"], max_retries=0
    )
    with pytest.raises(openai.NotFoundError):
        other.batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError):
        other.batches.cancel(batch.id)
    with pytest.raises(openai.NotFoundError):
        other.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert batch.id not in [b.id for b in other.batches.list().data]


async def test_an_embeddings_batch_on_both_providers(batch_stack: Stack) -> None:
    models = ("text-embedding-3-small", "gemini-embedding-001")
    lines = [
        {
            "custom_id": f"e{i}",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": models[i % 2], "input": f"text {i}"},
        }
        for i in range(10)
    ]
    sdk = openai_sdk(batch_stack)
    uploaded = sdk.files.create(file=("e.jsonl", jsonl(lines)), purpose="batch")
    batch = sdk.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h"
    )
    done = await batch_reaches(sdk, batch.id, {"completed", "failed"}, timeout=60)
    assert done.status == "completed"
    outputs = {o["custom_id"]: o for o in file_lines(sdk, done.output_file_id)}
    assert sorted(outputs) == sorted(f"e{i}" for i in range(10))
    for out in outputs.values():
        body = out["response"]["body"]
        assert body["object"] == "list"
        assert len(body["data"][0]["embedding"]) > 0
