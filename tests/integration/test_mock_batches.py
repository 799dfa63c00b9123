"""Batch mode over real HTTP, driven by the official openai and google-genai SDKs."""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from openai import OpenAI
from openai.types import Batch

from tests.support.processes import ManagedProcess, free_port

T = TypeVar("T")
OPENAI_DONE = {"completed", "failed", "expired", "cancelled"}
MODEL = "gpt-4o-mini"


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "anygate.ops.mock_provider", "--port", str(port)]
    with ManagedProcess.start(args, ready_url=f"{url}/_mock/health") as process:
        yield url
        assert process.running, process.log_tail()


@pytest.fixture
def control(base_url: str) -> Iterator[httpx.Client]:
    """A mock reset to its start settings with a short batch delay, so polls finish fast."""
    with httpx.Client(base_url=f"{base_url}/_mock", timeout=5) as client:
        client.post("/reset").raise_for_status()
        client.post("/settings", json={"batch_delay_s": 0.3}).raise_for_status()
        yield client


@pytest.fixture
def oai(base_url: str, control: httpx.Client) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{base_url}/v1", api_key="k", max_retries=0) as client:
        yield client


@pytest.fixture
def gemini(base_url: str, control: httpx.Client) -> Iterator[genai.Client]:
    options = types.HttpOptions(base_url=base_url, api_version="v1beta")
    with genai.Client(api_key="k", http_options=options) as client:
        yield client


def poll(fetch: Callable[[], T], done: Callable[[T], bool], timeout: float = 10.0) -> list[T]:
    """Every answer until `done`, polling every 50 ms."""
    seen = [fetch()]
    deadline = time.monotonic() + timeout
    while not done(seen[-1]):
        assert time.monotonic() < deadline, f"still not done: {seen[-1]}"
        time.sleep(0.05)
        seen.append(fetch())
    return seen


def chat_lines(count: int, *, text: str = "question") -> bytes:
    rows = [
        {
            "custom_id": f"r{index}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": MODEL, "messages": [{"role": "user", "content": f"{text} {index}"}]},
        }
        for index in range(count)
    ]
    return "\n".join(json.dumps(row) for row in rows).encode()


def start_batch(oai: OpenAI, data: bytes, **extra: Any) -> Batch:
    uploaded = oai.files.create(file=("input.jsonl", io.BytesIO(data)), purpose="batch")
    return oai.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        **extra,
    )


def finished(oai: OpenAI, batch: Batch, timeout: float = 10.0) -> list[Batch]:
    return poll(lambda: oai.batches.retrieve(batch.id), lambda b: b.status in OPENAI_DONE, timeout)


def rows(oai: OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    return [json.loads(line) for line in oai.files.content(file_id).text.splitlines()]


def test_openai_batch_runs_to_completed_with_answers_equal_to_live(oai: OpenAI) -> None:
    uploaded = oai.files.create(file=("input.jsonl", io.BytesIO(chat_lines(3))), purpose="batch")
    assert (uploaded.object, uploaded.purpose, uploaded.status) == ("file", "batch", "processed")
    assert uploaded.id.startswith("file-")
    assert uploaded.expires_at is not None
    batch = oai.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"job": "nightly"},
    )
    assert batch.status == "validating"

    history = finished(oai, batch)
    final = history[-1]

    assert final.status == "completed"
    statuses = [seen.status for seen in history]
    assert statuses == sorted(
        statuses, key=["validating", "in_progress", "finalizing", "completed"].index
    )
    assert final.request_counts is not None
    assert (final.request_counts.total, final.request_counts.completed) == (3, 3)
    assert final.metadata == {"job": "nightly"}
    assert final.in_progress_at is not None
    assert final.completed_at is not None
    assert final.error_file_id is None
    output = rows(oai, final.output_file_id)
    assert [row["custom_id"] for row in output] == ["r0", "r1", "r2"]
    live = oai.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "question 1"}]
    )
    body = output[1]["response"]["body"]
    assert output[1]["response"]["status_code"] == 200
    assert body["choices"][0]["message"]["content"] == live.choices[0].message.content
    assert live.usage is not None
    assert body["usage"]["total_tokens"] == live.usage.total_tokens
    assert final.usage is not None
    assert final.usage.total_tokens == 3 * live.usage.total_tokens


def test_openai_files_list_retrieve_and_delete(oai: OpenAI) -> None:
    uploaded = oai.files.create(file=("input.jsonl", io.BytesIO(chat_lines(1))), purpose="batch")

    assert oai.files.retrieve(uploaded.id).bytes == len(chat_lines(1))
    assert uploaded.id in [item.id for item in oai.files.list(purpose="batch")]
    assert oai.files.delete(uploaded.id).deleted is True
    assert uploaded.id not in [item.id for item in oai.files.list()]


def test_openai_batches_list_pages_newest_first(oai: OpenAI) -> None:
    ids = [start_batch(oai, chat_lines(1)).id for _ in range(3)]

    first = oai.batches.list(limit=2)
    every = [batch.id for batch in oai.batches.list(limit=2)]

    assert [batch.id for batch in first.data] == ids[::-1][:2]
    assert first.has_more is True
    assert every == ids[::-1]


def test_two_thousand_lines_complete_fast(oai: OpenAI, control: httpx.Client) -> None:
    control.post("/settings", json={"batch_delay_s": 0.5}).raise_for_status()
    started = time.monotonic()
    batch = start_batch(oai, chat_lines(2000))

    final = finished(oai, batch)[-1]
    output = rows(oai, final.output_file_id)
    elapsed = time.monotonic() - started

    assert final.status == "completed"
    assert len(output) == 2000
    assert len({row["custom_id"] for row in output}) == 2000
    print(f"2,000-line OpenAI batch: {elapsed:.2f} s from upload to parsed output")
    assert elapsed < 3.0


def test_openai_cancel_mid_run_keeps_the_done_lines(oai: OpenAI, control: httpx.Client) -> None:
    control.post("/settings", json={"batch_delay_s": 2.0}).raise_for_status()
    batch = start_batch(oai, chat_lines(100))
    poll(
        lambda: oai.batches.retrieve(batch.id),
        lambda b: b.request_counts is not None and b.request_counts.completed > 0,
    )

    cancelling = oai.batches.cancel(batch.id)
    final = finished(oai, batch)[-1]

    assert cancelling.status == "cancelling"
    assert cancelling.cancelling_at is not None
    assert final.status == "cancelled"
    assert final.cancelled_at is not None
    assert final.request_counts is not None
    done = final.request_counts.completed
    assert 0 < done < 100
    assert len(rows(oai, final.output_file_id)) == done


def test_openai_expired_batch_has_partial_output_and_an_error_file(
    oai: OpenAI, control: httpx.Client
) -> None:
    control.post("/batch_faults", json={"fault": "expire", "fraction": 0.25}).raise_for_status()
    final = finished(oai, start_batch(oai, chat_lines(8)))[-1]

    assert final.status == "expired"
    assert final.expired_at is not None
    assert len(rows(oai, final.output_file_id)) == 2
    errors = rows(oai, final.error_file_id)
    assert [row["error"]["code"] for row in errors] == ["batch_expired"] * 6
    assert [row["custom_id"] for row in errors] == [f"r{index}" for index in range(2, 8)]


def test_openai_failed_validation_lists_the_duplicate(oai: OpenAI) -> None:
    data = chat_lines(2) + b"\n" + chat_lines(1)
    final = finished(oai, start_batch(oai, data))[-1]

    assert final.status == "failed"
    assert final.errors is not None
    assert final.errors.data is not None
    [error] = final.errors.data
    assert (error.code, error.line, error.param) == ("duplicate_custom_id", 3, "custom_id")


def test_openai_late_batch_stays_in_progress_for_the_extra_time(
    oai: OpenAI, control: httpx.Client
) -> None:
    control.post("/batch_faults", json={"fault": "late", "late_s": 1.0}).raise_for_status()
    batch = start_batch(oai, chat_lines(2))
    time.sleep(0.6)

    assert oai.batches.retrieve(batch.id).status == "in_progress"
    assert finished(oai, batch)[-1].status == "completed"


def gemini_done(job: types.BatchJob) -> bool:
    return bool(job.done)


def test_gemini_inline_batch_succeeds_with_responses_in_order(gemini: genai.Client) -> None:
    requests: Any = [
        {
            "contents": [{"parts": [{"text": "first question"}], "role": "user"}],
            "metadata": {"id": "a"},
        },
        {
            "contents": [{"parts": [{"text": "second question"}], "role": "user"}],
            "metadata": {"id": "b"},
        },
    ]
    job = gemini.batches.create(
        model="gemini-2.0-flash", src=requests, config={"display_name": "inline"}
    )
    assert job.state == types.JobState.JOB_STATE_PENDING
    assert job.name is not None

    final = poll(lambda: gemini.batches.get(name=job.name or ""), gemini_done)[-1]

    assert final.state == types.JobState.JOB_STATE_SUCCEEDED
    assert final.display_name == "inline"
    assert final.dest is not None
    assert final.dest.inlined_responses is not None
    answers = final.dest.inlined_responses
    live = gemini.models.generate_content(model="gemini-2.0-flash", contents="second question")
    assert [answer.metadata for answer in answers] == [{"id": "a"}, {"id": "b"}]
    assert answers[1].response is not None
    assert answers[1].response.text == live.text
    assert answers[1].response.usage_metadata == live.usage_metadata


def test_gemini_file_batch_uploads_and_downloads_through_the_files_api(
    gemini: genai.Client,
) -> None:
    lines = [
        {"key": f"k{index}", "request": {"contents": [{"parts": [{"text": f"q {index}"}]}]}}
        for index in range(3)
    ]
    data = "\n".join(json.dumps(line) for line in lines).encode()
    uploaded = gemini.files.upload(
        file=io.BytesIO(data), config=types.UploadFileConfig(display_name="in", mime_type="jsonl")
    )
    assert uploaded.name is not None
    assert gemini.files.get(name=uploaded.name).size_bytes == len(data)

    job = gemini.batches.create(model="gemini-2.0-flash", src=uploaded.name)
    final = poll(lambda: gemini.batches.get(name=job.name or ""), gemini_done)[-1]

    assert final.state == types.JobState.JOB_STATE_SUCCEEDED
    assert final.dest is not None
    assert final.dest.file_name is not None
    output = [
        json.loads(line) for line in gemini.files.download(file=final.dest.file_name).splitlines()
    ]
    assert [row["key"] for row in output] == ["k0", "k1", "k2"]
    assert (
        output[0]["response"]["candidates"][0]["content"]["parts"][0]["text"]
        == "Mock reply to: q 0"
    )


def test_gemini_cancel_then_delete(gemini: genai.Client, control: httpx.Client) -> None:
    control.post("/settings", json={"batch_delay_s": 5.0}).raise_for_status()
    requests: Any = [{"contents": [{"parts": [{"text": "slow"}]}]}]
    job = gemini.batches.create(model="gemini-2.0-flash", src=requests)
    name = job.name or ""

    gemini.batches.cancel(name=name)
    control.post("/settings", json={"batch_delay_s": 0.3}).raise_for_status()
    final = poll(lambda: gemini.batches.get(name=name), gemini_done)[-1]
    listed = [item.name for item in gemini.batches.list()]
    gemini.batches.delete(name=name)

    assert final.state == types.JobState.JOB_STATE_CANCELLED
    assert name in listed
    with pytest.raises(genai_errors.ClientError) as raised:
        gemini.batches.get(name=name)
    assert raised.value.code == 404


def test_gemini_expired_batch_maps_to_job_state_expired(
    gemini: genai.Client, control: httpx.Client
) -> None:
    control.post("/batch_faults", json={"fault": "expire", "fraction": 0.5}).raise_for_status()
    requests: Any = [{"contents": [{"parts": [{"text": f"t{index}"}]}]} for index in range(2)]
    job = gemini.batches.create(model="gemini-2.0-flash", src=requests)

    final = poll(lambda: gemini.batches.get(name=job.name or ""), gemini_done)[-1]

    assert final.state == types.JobState.JOB_STATE_EXPIRED
    assert final.dest is not None
    assert final.dest.inlined_responses is not None
    first, second = final.dest.inlined_responses
    assert first.response is not None
    assert second.error is not None


@pytest.mark.filterwarnings("ignore:batches.create_embeddings")
def test_gemini_embeddings_batch_returns_the_live_vectors(gemini: genai.Client) -> None:
    source = types.EmbeddingsBatchJobSource(
        inlined_requests=types.EmbedContentBatch(contents=["alpha", "beta"])
    )
    job = gemini.batches.create_embeddings(model="gemini-embedding-001", src=source)

    final = poll(lambda: gemini.batches.get(name=job.name or ""), gemini_done)[-1]
    live = gemini.models.embed_content(model="gemini-embedding-001", contents="beta")

    assert final.state == types.JobState.JOB_STATE_SUCCEEDED
    assert final.dest is not None
    answers = final.dest.inlined_embed_content_responses
    assert answers is not None
    assert len(answers) == 2
    assert live.embeddings is not None
    assert answers[1].response is not None
    assert answers[1].response.embedding is not None
    assert answers[1].response.embedding.values == live.embeddings[0].values
