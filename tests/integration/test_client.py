"""The Python client (docs/client.md) against a live stack: API, an ``openai`` worker, ``anygate
control`` (batches, webhooks), real Redis and the mock provider over HTTP. Every test runs with
both ``AsyncClient`` and ``Client`` (``tests/support/client_kinds.py``).

The ``gemini`` pool has no worker here: a job for ``gemini-2.5-flash`` stays queued, which is
what the wait-timeout, cancel and queue-cap tests need."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from anygate.client import (
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    Batch,
    ConflictError,
    JobEvent,
    NotFoundError,
    RateLimitError,
    WaitTimeoutError,
    verify_webhook,
)
from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.batches import batch_line
from tests.support.client_kinds import KINDS, open_client
from tests.support.configs import TENANT_KEYS, config_tree, hash_key
from tests.support.eventually import eventually
from tests.support.mock import MockControl
from tests.support.stack import Stack, running_stack
from tests.support.tcp_proxy import TcpProxy, tcp_proxy
from tests.support.webhooks import webhook_receiver

WEBHOOK_SECRET = "whsec-client-tests-0123456789"
CAPPED_KEY = "sk-test-capped-0123456789"
KEY = TENANT_KEYS["acme"]
CHAT = "/v1/chat/completions"
STUCK_MODEL = "gemini-2.5-flash"
"""Its pool has no worker in this stack: its jobs stay queued."""


def chat(text: str = "hello", model: str = "gpt-4o-mini") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}]}


@pytest.fixture(scope="module")
def client_stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis, mock_server: str
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("client")
    secret_file = tmp / "webhook.secret"
    secret_file.write_text(WEBHOOK_SECRET)
    tree = config_tree(redis_server.url, f"t{secrets.token_hex(5)}", mock_root=mock_server)
    tree["security"] = {"webhook_secret": f"file:{secret_file}"}
    tree["tenants"] = [
        *tree["tenants"],
        {"id": "capped", "api_key_sha256": [hash_key(CAPPED_KEY)], "quotas": {"max_queued": 1}},
    ]
    with running_stack(tmp, tree, ["openai"]) as stack:
        stack.start_control()
        yield stack


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def ag(kind: str, client_stack: Stack, mock: MockControl) -> AsyncIterator[Any]:
    async with open_client(kind, client_stack.url, KEY) as client:
        yield client


async def test_submit_get_wait_and_chat(ag: Any) -> None:
    job = await ag.submit(
        CHAT,
        chat("what is 2+2"),
        priority="interactive",
        metadata={"run": "client-test"},
        deadline=time.time() + 600,
    )
    assert job.status == "queued"
    assert job.queue_position is not None
    assert job.metadata == {"run": "client-test"}
    done = await ag.wait(job.id, timeout=30, poll_s=5)
    assert done.done
    assert done.status == "succeeded"
    assert done.text
    assert done.provider == "openai"
    assert done.attempts == 1
    assert done.deadline is not None
    assert done.priority == "interactive"
    again = await ag.get(job.id)
    assert again.text == done.text
    assert again.raw["object"] == "job"
    polled = await ag.get(job.id, wait=5)
    assert polled.status == "succeeded"
    answered = await ag.chat("gpt-4o-mini", "tell me something", max_tokens=50)
    assert answered.status == "succeeded"
    assert answered.text
    assert answered.endpoint == CHAT
    assert answered.priority == "interactive"


async def test_an_idempotency_key_makes_one_job_and_refuses_another_body(ag: Any) -> None:
    key = f"client-test-{secrets.token_hex(4)}"
    first = await ag.submit(CHAT, chat("once"), idempotency_key=key)
    second = await ag.submit(CHAT, chat("once"), idempotency_key=key)
    assert second.id == first.id
    with pytest.raises(ConflictError) as raised:
        await ag.submit(CHAT, chat("another body"), idempotency_key=key)
    assert raised.value.status == 409
    assert raised.value.code == "idempotency_key_reused"
    await ag.wait(first.id, timeout=30)


async def test_typed_errors_carry_the_gateway_error(
    ag: Any, kind: str, client_stack: Stack
) -> None:
    with pytest.raises(NotFoundError) as missing:
        await ag.get("job_does_not_exist")
    assert missing.value.status == 404
    assert missing.value.code == "job_not_found"
    assert missing.value.request_id, "x-request-id is kept"
    with pytest.raises(BadRequestError) as bad:
        await ag.submit(CHAT, {"model": "gpt-4o-mini"})
    assert bad.value.param is not None
    assert "messages" in bad.value.param
    assert bad.value.type == "invalid_request_error"
    with pytest.raises(NotFoundError):
        await anext(aiter(ag.stream("job_does_not_exist")))
    async with open_client(kind, client_stack.url, "sk-wrong-key-000000000") as stranger:
        with pytest.raises(AuthenticationError) as denied:
            await stranger.get("job_x")
    assert "sk-wrong" not in str(denied.value), "the key is never in an error"


async def test_wait_times_out_and_a_queued_job_is_cancelled(ag: Any) -> None:
    job = await ag.submit(CHAT, chat(model=STUCK_MODEL))
    started = time.monotonic()
    with pytest.raises(WaitTimeoutError) as raised:
        await ag.wait(job.id, timeout=1.0, poll_s=0.4)
    took = time.monotonic() - started
    assert 0.9 < took < 5, took
    assert raised.value.job is not None
    assert raised.value.job.status == "queued"
    cancelled = await ag.cancel(job.id)
    assert cancelled.status == "cancelled"
    assert cancelled.done
    events = [e async for e in ag.stream(job.id)]
    assert [e.type for e in events] == ["queued", "cancelled"]


async def test_list_follows_pages(ag: Any) -> None:
    tag = secrets.token_hex(4)
    made = [await ag.submit(CHAT, chat(f"list {i}"), metadata={"tag": tag}) for i in range(5)]
    for job in made:
        await ag.wait(job.id, timeout=30)
    listed = [job async for job in ag.list(page_size=2)]
    ids = [job.id for job in listed]
    assert len(ids) == len(set(ids)), "no job twice across pages"
    mine = [job.id for job in listed if job.metadata.get("tag") == tag]
    assert mine == [job.id for job in reversed(made)], "newest first, all of them"
    limited = [job async for job in ag.list(page_size=2, limit=3)]
    assert [j.id for j in limited] == ids[:3]
    succeeded = [job async for job in ag.list(status="succeeded", page_size=100)]
    assert succeeded
    assert all(job.status == "succeeded" for job in succeeded)


async def test_stream_and_stream_text_follow_a_job(ag: Any, mock: MockControl) -> None:
    mock.settings(chunk_count=6, chunk_delay_ms=20)
    job = await ag.submit(CHAT, chat("stream me"))
    events = [e async for e in ag.stream(job.id)]
    assert [e.type for e in events][:2] == ["queued", "started"]
    assert events[-1].type == "completed"
    assert sum(e.type == "chunk" for e in events) >= 6
    done = await ag.get(job.id)
    text = "".join([d.text async for d in ag.stream_text(job.id)])
    assert text == done.text
    rest = [e async for e in ag.stream(job.id, last_event_id=events[2].id)]
    assert [e.id for e in rest] == [e.id for e in events[3:]], "resumes after the id given"


async def _stream_cut_midway(
    ag: Any, job_id: str, proxy: TcpProxy, after_chunks: int
) -> tuple[list[JobEvent], int]:
    """The job's events, read through ``proxy``, which cuts the connection after
    ``after_chunks`` chunks; and the index of the first event read after the cut."""
    events: list[JobEvent] = []
    cut_at = -1
    async for event in ag.stream(job_id):
        events.append(event)
        if cut_at < 0 and sum(e.type == "chunk" for e in events) == after_chunks:
            assert await asyncio.to_thread(proxy.cut) >= 1, "the stream's connection was live"
            cut_at, connections = len(events), proxy.accepted
        elif len(events) == cut_at + 1:
            assert proxy.accepted > connections, "the next event came over a new connection"
    return events, cut_at


async def test_a_stream_resumes_after_the_connection_is_cut(
    kind: str, client_stack: Stack, mock: MockControl
) -> None:
    mock.settings(chunk_count=16, chunk_delay_ms=120)
    with tcp_proxy(client_stack.url) as proxy:
        async with open_client(kind, proxy.url, KEY) as ag:
            job = await ag.submit(CHAT, chat("a long answer, please"))
            events, cut_at = await _stream_cut_midway(ag, job.id, proxy, after_chunks=3)
    assert 0 < cut_at < len(events), "events came both before and after the cut"
    ids = [e.id for e in events]
    assert len(ids) == len(set(ids)), "no event twice"
    async with AsyncClient(client_stack.url, KEY) as direct:
        whole = [e async for e in direct.stream(job.id)]
        done = await direct.get(job.id)
    assert ids == [e.id for e in whole], "every event once, in order, as the log holds them"
    assert events[-1].type == "completed"
    assert sum(e.type == "chunk" for e in events) >= 16
    chunk_text = "".join(
        c["delta"].get("content") or ""
        for e in events
        if e.type == "chunk"
        for c in e.data["choices"]
    )
    assert chunk_text == done.text


async def test_a_queue_cap_429_is_retried_after_retry_after(
    kind: str, client_stack: Stack, mock: MockControl
) -> None:
    async with (
        open_client(kind, client_stack.url, CAPPED_KEY, max_retries=0) as impatient,
        open_client(kind, client_stack.url, CAPPED_KEY, max_retries=3) as patient,
    ):
        holder = await impatient.submit(CHAT, chat(model=STUCK_MODEL))
        with pytest.raises(RateLimitError) as refused:
            await impatient.submit(CHAT, chat(model=STUCK_MODEL))
        assert refused.value.code == "queue_full"
        retry_after = refused.value.retry_after
        assert retry_after is not None
        assert retry_after >= 1

        async def free_the_slot() -> None:
            """Well after the patient client's first try (refused), before its retry."""
            await asyncio.sleep(0.5)
            await impatient.cancel(holder.id)

        started = time.monotonic()
        freeing = asyncio.create_task(free_the_slot())
        admitted = await patient.submit(CHAT, chat(model=STUCK_MODEL))
        took = time.monotonic() - started
        await freeing
        assert took >= retry_after * 0.95, f"retried after {took:.2f} s, asked {retry_after}"
        assert admitted.status == "queued"
        assert (await patient.cancel(admitted.id)).status == "cancelled"


async def test_a_job_webhook_is_delivered_and_verifies(ag: Any) -> None:
    with webhook_receiver() as receiver:
        job = await ag.submit(CHAT, chat("call me back"), webhook_url=receiver.url)
        await ag.wait(job.id, timeout=30)
        await eventually(lambda: receiver.delivered(job.id), what="the job's webhook", timeout=20)
    delivery = next(d for d in receiver.seen if d.subject == job.id)
    signature = delivery.headers["x-anygate-signature"]
    event = verify_webhook(delivery.body, signature, WEBHOOK_SECRET)
    assert event["type"] == "job.succeeded"
    assert event["data"]["id"] == job.id
    with pytest.raises(Exception, match="does not match"):
        verify_webhook(delivery.body + b" ", signature, WEBHOOK_SECRET)


async def test_a_batch_from_an_iterable_runs_with_progress_and_results(ag: Any) -> None:
    def requests() -> Iterator[dict[str, Any]]:
        for i in range(12):
            yield batch_line(i, model="gpt-4o-mini")
        yield batch_line(12, model="no-such-model")

    batch = await ag.submit_batch(requests(), metadata={"suite": "client"})
    assert batch.status in {"validating", "in_progress"}
    assert batch.metadata == {"suite": "client"}
    seen: list[Batch] = []
    done = await ag.wait_batch(batch.id, progress=seen.append, poll_s=0.2, timeout=60)
    assert done.status == "completed"
    assert done.done
    assert seen
    assert seen[-1].status == "completed"
    finished = [b.request_counts.finished for b in seen]
    assert finished == sorted(finished), "progress only moves forward"
    assert (done.request_counts.total, done.request_counts.completed) == (13, 12)
    results = [r async for r in ag.batch_results(done)]
    ok = sorted(r.custom_id or "" for r in results if r.ok)
    assert ok == sorted(f"req-{i}" for i in range(12))
    [failed] = [r for r in results if not r.ok]
    assert failed.custom_id == "req-12"
    assert failed.error is not None
    ok_result = next(r for r in results if r.ok)
    assert ok_result.status_code == 200
    assert ok_result.body is not None
    assert ok_result.body["choices"][0]["message"]["content"]
    by_id = [r async for r in ag.batch_results(done.id)]
    assert len(by_id) == len(results)
    listed = [b async for b in ag.list_batches(limit=50)]
    assert done.id in [b.id for b in listed]
    outputs = [f async for f in ag.list_files(purpose="batch_output")]
    assert done.output_file_id in [f.id for f in outputs]


async def test_files_from_a_path_and_bytes_and_a_cancelled_batch(ag: Any, tmp_path: Path) -> None:
    lines = [batch_line(i, model=STUCK_MODEL) for i in range(3)]
    path = tmp_path / "stuck.jsonl"
    content = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    path.write_bytes(content)
    from_path = await ag.upload_file(path)
    assert from_path.filename == "stuck.jsonl"
    assert from_path.bytes == len(content)
    assert from_path.purpose == "batch"
    from_bytes = await ag.upload_file(content, filename="b.jsonl")
    assert from_bytes.filename == "b.jsonl"
    assert await ag.file_content(from_bytes.id) == content
    listed = [f.id async for f in ag.list_files(purpose="batch", page_size=1)]
    assert listed.index(from_bytes.id) < listed.index(from_path.id), "newest first, paged"
    assert await ag.delete_file(from_bytes.id) is True
    with pytest.raises(NotFoundError):
        await ag.file_content(from_bytes.id)
    batch = await ag.create_batch(from_path.id, metadata={"k": "v"})
    assert (await ag.get_batch(batch.id)).id == batch.id
    await eventually(
        lambda: _status_in(ag, batch.id, {"in_progress"}), what="batch started", timeout=20
    )
    with pytest.raises(WaitTimeoutError) as waited:
        await ag.wait_batch(batch.id, poll_s=0.2, timeout=0.5)
    assert waited.value.batch is not None
    assert not waited.value.batch.done
    cancelling = await ag.cancel_batch(batch.id)
    assert cancelling.status in {"cancelling", "cancelled"}
    ended = await ag.wait_batch(batch.id, poll_s=0.2, timeout=60)
    assert ended.status == "cancelled"
    results = [r async for r in ag.batch_results(ended)]
    assert sorted(r.custom_id or "" for r in results) == ["req-0", "req-1", "req-2"]
    assert not any(r.ok for r in results)
    with pytest.raises(NotFoundError):
        await ag.get_batch("batch_nope")
    with pytest.raises(BadRequestError) as bad_purpose:
        await ag.upload_file(content, purpose="assistants")
    assert bad_purpose.value.param == "purpose"


async def test_list_batches_pages_through_batches_of_one_second(ag: Any) -> None:
    """Batches made in the same second share their list score: paging must not skip them."""
    uploaded = await ag.upload_file([batch_line(0, model=STUCK_MODEL)])
    made = [await ag.create_batch(uploaded.id, metadata={"n": str(n)}) for n in range(4)]
    try:
        paged = [b.id async for b in ag.list_batches(page_size=1)]
        whole = [b.id async for b in ag.list_batches(page_size=100)]
        assert paged == whole, "the same batches, in the same order, page by page"
        assert {b.id for b in made} <= set(paged)
    finally:
        for batch in made:
            await ag.cancel_batch(batch.id)


async def _status_in(ag: Any, batch_id: str, statuses: set[str]) -> bool:
    return (await ag.get_batch(batch_id)).status in statuses
