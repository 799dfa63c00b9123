"""Batch mode in process: validation, error shapes, faults, metering and the control API.

The delay is 0 unless a test says otherwise, so a batch has ended by its first poll and the
tests need no sleeps; the timeline itself is covered in test_mock_batch_jobs.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from anygate.ops.mock_provider import MockSettings, create_app
from anygate.ops.mock_provider.app import MockApp

OPENAI = {"Authorization": "Bearer k"}
GEMINI = {"x-goog-api-key": "k"}


def chat_line(custom_id: str, text: str = "hi", model: str = "gpt-4o-mini", **extra: Any) -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    line = {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}
    return orjson.dumps({**line, **extra})


@pytest.fixture
def app() -> MockApp:
    return create_app(MockSettings(api_key="k", batch_delay_s=0))


@pytest.fixture
async def client(app: MockApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://mock") as http:
        yield http


async def upload(client: httpx.AsyncClient, lines: list[bytes], name: str = "in.jsonl") -> Any:
    files = {"file": (name, b"\n".join(lines), "application/jsonl")}
    return await client.post("/v1/files", headers=OPENAI, data={"purpose": "batch"}, files=files)


async def run_batch(
    client: httpx.AsyncClient, lines: list[bytes], endpoint: str = "/v1/chat/completions"
) -> dict[str, Any]:
    uploaded = await upload(client, lines)
    assert uploaded.status_code == 200, uploaded.text
    body = {
        "input_file_id": uploaded.json()["id"],
        "endpoint": endpoint,
        "completion_window": "24h",
    }
    created = await client.post("/v1/batches", headers=OPENAI, json=body)
    assert created.status_code == 200, created.text
    polled = await client.get(f"/v1/batches/{created.json()['id']}", headers=OPENAI)
    result: dict[str, Any] = polled.json()
    return result


async def jsonl(client: httpx.AsyncClient, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    response = await client.get(f"/v1/files/{file_id}/content", headers=OPENAI)
    assert response.status_code == 200
    return [orjson.loads(line) for line in response.content.splitlines()]


async def test_a_batch_upload_must_be_jsonl(client: httpx.AsyncClient) -> None:
    response = await upload(client, [chat_line("a")], name="in.txt")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "file"
    assert "Must be .jsonl" in response.json()["error"]["message"]


async def test_a_malformed_line_fails_the_upload_naming_the_line(
    client: httpx.AsyncClient,
) -> None:
    response = await upload(client, [chat_line("a"), b"{not json", chat_line("c")])

    assert response.status_code == 400
    assert "line 2" in response.json()["error"]["message"]


async def test_an_upload_without_purpose_names_the_field(client: httpx.AsyncClient) -> None:
    files = {"file": ("in.jsonl", chat_line("a"), "application/jsonl")}
    response = await client.post("/v1/files", headers=OPENAI, files=files)

    assert (response.status_code, response.json()["error"]["param"]) == (400, "purpose")


async def test_files_need_the_key(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/files")

    assert response.status_code == 401
    assert "API key" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"endpoint": "/v1/responses"}, "endpoint"),
        ({"completion_window": "1h"}, "completion_window"),
        ({"metadata": {"k": 1}}, "metadata"),
        ({"input_file_id": None}, "input_file_id"),
    ],
)
async def test_a_bad_batch_create_names_the_field(
    client: httpx.AsyncClient, change: dict[str, Any], param: str
) -> None:
    file_id = (await upload(client, [chat_line("a")])).json()["id"]
    body = {
        "input_file_id": file_id,
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }
    response = await client.post("/v1/batches", headers=OPENAI, json={**body, **change})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


async def test_a_batch_of_an_unknown_file_is_404(client: httpx.AsyncClient) -> None:
    body = {"input_file_id": "file-nope", "endpoint": "/v1/embeddings", "completion_window": "24h"}
    response = await client.post("/v1/batches", headers=OPENAI, json=body)

    assert response.status_code == 404
    assert "file-nope" in response.json()["error"]["message"]


async def test_unknown_batch_and_file_ids_are_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/batches/batch_x", headers=OPENAI)).status_code == 404
    assert (await client.get("/v1/files/file-x/content", headers=OPENAI)).status_code == 404
    assert (await client.delete("/v1/files/file-x", headers=OPENAI)).status_code == 404


async def test_bad_lines_fail_validation_with_each_problem_listed(
    client: httpx.AsyncClient,
) -> None:
    lines = [
        chat_line("a"),
        chat_line("b", url="/v1/embeddings"),
        chat_line("a"),
        chat_line("c", model="gpt-4o"),
    ]
    batch = await run_batch(client, lines)

    assert batch["status"] == "failed"
    assert batch["failed_at"] is not None
    assert batch["output_file_id"] is None
    problems = [(error["code"], error["line"]) for error in batch["errors"]["data"]]
    assert problems == [("url_mismatch", 2), ("duplicate_custom_id", 3), ("model_mismatch", 4)]


async def test_a_batched_answer_equals_the_live_one(client: httpx.AsyncClient) -> None:
    batch = await run_batch(client, [chat_line("a", "what is the weather")])
    live = await client.post(
        "/v1/chat/completions",
        headers=OPENAI,
        json={
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "what is the weather"}],
        },
    )

    assert batch["status"] == "completed"
    [row] = await jsonl(client, batch["output_file_id"])
    body = row["response"]["body"]
    assert row["custom_id"] == "a"
    assert row["error"] is None
    assert body["choices"] == live.json()["choices"]
    assert body["usage"] == live.json()["usage"]
    assert batch["usage"]["total_tokens"] == live.json()["usage"]["total_tokens"]


async def test_an_embeddings_batch_returns_the_live_vectors(client: httpx.AsyncClient) -> None:
    body = {"model": "text-embedding-3-small", "input": "hello"}
    line = {"custom_id": "e", "method": "POST", "url": "/v1/embeddings", "body": body}
    batch = await run_batch(client, [orjson.dumps(line)], endpoint="/v1/embeddings")
    live = await client.post("/v1/embeddings", headers=OPENAI, json=body)

    [row] = await jsonl(client, batch["output_file_id"])
    assert row["response"]["body"]["data"] == live.json()["data"]


async def test_an_invalid_line_body_lands_in_the_error_file(client: httpx.AsyncClient) -> None:
    bad = orjson.dumps(
        {
            "custom_id": "x",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini"},
        }
    )
    batch = await run_batch(client, [chat_line("a"), bad])

    assert batch["request_counts"] == {"total": 2, "completed": 1, "failed": 1}
    [row] = await jsonl(client, batch["error_file_id"])
    assert row["custom_id"] == "x"
    assert row["response"]["status_code"] == 400
    assert row["response"]["body"]["error"]["param"] == "messages"


async def test_line_errors_put_every_nth_line_in_the_error_file(
    client: httpx.AsyncClient,
) -> None:
    rule = {"fault": "line_errors", "every": 2, "status": 429, "times": 1}
    assert (await client.post("/_mock/batch_faults", json=rule)).status_code == 200
    batch = await run_batch(client, [chat_line(f"r{index}") for index in range(5)])

    assert batch["request_counts"] == {"total": 5, "completed": 3, "failed": 2}
    errors = await jsonl(client, batch["error_file_id"])
    assert [(row["custom_id"], row["response"]["status_code"]) for row in errors] == [
        ("r1", 429),
        ("r3", 429),
    ]
    assert errors[0]["response"]["body"]["error"]["code"] == "rate_limit_exceeded"
    assert (await client.get("/_mock/batch_faults")).json()["data"] == []


async def test_an_expired_batch_keeps_the_done_lines_and_reports_the_rest(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/_mock/batch_faults", json={"fault": "expire", "fraction": 0.5})
    batch = await run_batch(client, [chat_line(f"r{index}") for index in range(4)])

    assert batch["status"] == "expired"
    assert batch["expired_at"] is not None
    assert batch["request_counts"] == {"total": 4, "completed": 2, "failed": 2}
    done = await jsonl(client, batch["output_file_id"])
    rest = await jsonl(client, batch["error_file_id"])
    assert [row["custom_id"] for row in done] == ["r0", "r1"]
    assert [(row["custom_id"], row["error"]["code"]) for row in rest] == [
        ("r2", "batch_expired"),
        ("r3", "batch_expired"),
    ]
    assert all(row["response"] is None for row in rest)


async def test_a_fail_fault_fails_the_batch(client: httpx.AsyncClient) -> None:
    await client.post("/_mock/batch_faults", json={"fault": "fail", "provider": "openai"})
    batch = await run_batch(client, [chat_line("a")])

    assert batch["status"] == "failed"
    assert batch["errors"]["data"][0]["code"] == "batch_failed"


async def test_batch_lines_are_metered_in_the_request_log_when_they_run(
    client: httpx.AsyncClient,
) -> None:
    await client.delete("/_mock/requests")
    batch = await run_batch(client, [chat_line("a", "one two three")])

    entries = (await client.get("/_mock/requests")).json()["data"]
    lines = [entry for entry in entries if entry["batch"] is not None]
    assert [(e["path"], e["model"], e["batch"]) for e in lines] == [
        ("/v1/chat/completions", "gpt-4o-mini", batch["id"])
    ]
    assert lines[0]["tokens"] == batch["usage"]["total_tokens"] > 0
    calls = [entry["path"] for entry in entries if entry["batch"] is None]
    assert calls == ["/v1/files", "/v1/batches", f"/v1/batches/{batch['id']}"]


async def test_batch_delay_is_a_runtime_setting(client: httpx.AsyncClient) -> None:
    response = await client.post("/_mock/settings", json={"batch_delay_s": 60})
    assert response.json()["batch_delay_s"] == 60

    batch = await run_batch(client, [chat_line("a")])

    assert batch["status"] == "validating"
    bad = await client.post("/_mock/settings", json={"batch_delay_s": -1})
    assert bad.status_code == 400
    assert "batch_delay_s" in bad.json()["error"]["message"]


async def test_a_bad_batch_fault_rule_is_refused_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/_mock/batch_faults", json={"fault": "line_errors", "every": 0})

    assert response.status_code == 400
    assert "every" in response.json()["error"]["message"]


async def test_reset_forgets_files_batches_and_batch_faults(client: httpx.AsyncClient) -> None:
    await client.post("/_mock/batch_faults", json={"fault": "fail"})
    await upload(client, [chat_line("a")])

    await client.post("/_mock/reset")

    assert (await client.get("/v1/files", headers=OPENAI)).json()["data"] == []
    assert (await client.get("/_mock/batch_faults")).json()["data"] == []


async def test_listing_pages_with_after_and_limit(client: httpx.AsyncClient) -> None:
    ids = [(await run_batch(client, [chat_line("a")]))["id"] for _ in range(3)]

    first = (await client.get("/v1/batches?limit=2", headers=OPENAI)).json()
    rest = (await client.get(f"/v1/batches?after={first['last_id']}", headers=OPENAI)).json()

    assert [batch["id"] for batch in first["data"]] == ids[::-1][:2]
    assert first["has_more"]
    assert [batch["id"] for batch in rest["data"]] == ids[:1]
    assert not rest["has_more"]
    bad = await client.get("/v1/batches?limit=0", headers=OPENAI)
    assert (bad.status_code, bad.json()["error"]["param"]) == (400, "limit")


def gemini_batch(*texts: str) -> dict[str, Any]:
    requests = [
        {"request": {"contents": [{"parts": [{"text": text}]}]}, "metadata": {"key": str(index)}}
        for index, text in enumerate(texts)
    ]
    return {"batch": {"displayName": "t", "inputConfig": {"requests": {"requests": requests}}}}


async def gemini_run(client: httpx.AsyncClient, *texts: str) -> dict[str, Any]:
    created = await client.post(
        "/v1beta/models/gemini-2.0-flash:batchGenerateContent",
        headers=GEMINI,
        json=gemini_batch(*texts),
    )
    assert created.status_code == 200, created.text
    assert created.json()["metadata"]["state"] == "BATCH_STATE_PENDING"
    polled = await client.get(f"/v1beta/{created.json()['name']}", headers=GEMINI)
    result: dict[str, Any] = polled.json()
    return result


async def test_a_gemini_inline_answer_equals_the_live_one(client: httpx.AsyncClient) -> None:
    operation = await gemini_run(client, "hello there")
    live = await client.post(
        "/v1beta/models/gemini-2.0-flash:generateContent",
        headers=GEMINI,
        json={"contents": [{"parts": [{"text": "hello there"}]}]},
    )

    assert operation["done"] is True
    assert operation["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
    assert operation["metadata"]["batchStats"] == {
        "requestCount": "1",
        "successfulRequestCount": "1",
    }
    [entry] = operation["metadata"]["output"]["inlinedResponses"]["inlinedResponses"]
    assert entry["metadata"] == {"key": "0"}
    assert entry["response"]["candidates"] == live.json()["candidates"]
    assert entry["response"]["usageMetadata"] == live.json()["usageMetadata"]


async def test_a_gemini_expired_batch_reports_done_lines_and_deadline_errors(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/_mock/batch_faults", json={"fault": "expire", "fraction": 0.5})
    operation = await gemini_run(client, "a", "b", "c", "d")

    assert operation["metadata"]["state"] == "BATCH_STATE_EXPIRED"
    entries = operation["metadata"]["output"]["inlinedResponses"]["inlinedResponses"]
    assert ["response" in entry for entry in entries] == [True, True, False, False]
    assert entries[2]["error"]["status"] == "DEADLINE_EXCEEDED"


async def test_gemini_line_errors_are_google_errors_in_place(client: httpx.AsyncClient) -> None:
    await client.post(
        "/_mock/batch_faults", json={"fault": "line_errors", "every": 2, "status": 503}
    )
    operation = await gemini_run(client, "a", "b")

    entries = operation["metadata"]["output"]["inlinedResponses"]["inlinedResponses"]
    assert entries[1]["error"]["code"] == 503
    assert entries[1]["metadata"] == {"key": "1"}
    assert operation["metadata"]["batchStats"]["failedRequestCount"] == "1"


async def test_a_gemini_fail_fault_ends_the_operation_with_an_error(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/_mock/batch_faults", json={"fault": "fail", "provider": "gemini"})
    operation = await gemini_run(client, "a")

    assert operation["metadata"]["state"] == "BATCH_STATE_FAILED"
    assert operation["done"] is True
    assert operation["error"]["code"] == 13
    assert "output" not in operation["metadata"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({}, "batch"),
        ({"batch": {"displayName": "x"}}, "input_config"),
        ({"batch": {"inputConfig": {"requests": {"requests": []}}}}, "must not be empty"),
        ({"batch": {"inputConfig": {"requests": {"requests": [{"metadata": {}}]}}}}, "[0].request"),
        ({"batch": {"inputConfig": {"fileName": "files/nope"}}}, "files/nope"),
    ],
)
async def test_a_bad_gemini_batch_is_refused_in_google_shape(
    client: httpx.AsyncClient, body: dict[str, Any], needle: str
) -> None:
    response = await client.post(
        "/v1beta/models/gemini-2.0-flash:batchGenerateContent", headers=GEMINI, json=body
    )

    error = response.json()["error"]
    assert response.status_code == error["code"] in (400, 404)
    assert error["status"] in ("INVALID_ARGUMENT", "NOT_FOUND")
    assert needle in error["message"]


async def test_gemini_batches_need_the_key_and_unknown_ones_are_404(
    client: httpx.AsyncClient,
) -> None:
    missing = await client.get("/v1beta/batches/abc")
    unknown = await client.get("/v1beta/batches/abc", headers=GEMINI)

    assert (missing.status_code, missing.json()["error"]["status"]) == (401, "UNAUTHENTICATED")
    assert (unknown.status_code, unknown.json()["error"]["status"]) == (404, "NOT_FOUND")


async def test_an_upload_session_rejects_a_wrong_offset(client: httpx.AsyncClient) -> None:
    start = await client.post(
        "/upload/v1beta/files",
        headers={
            **GEMINI,
            "X-Goog-Upload-Protocol": "resumable",
            "X-Goog-Upload-Command": "start",
            "X-Goog-Upload-Header-Content-Type": "jsonl",
        },
        json={"file": {"display_name": "x"}},
    )
    url = start.headers["x-goog-upload-url"]

    response = await client.post(
        url,
        headers={"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "5"},
        content=b"{}",
    )

    assert response.status_code == 400
    assert "X-Goog-Upload-Offset must be 0" in response.json()["error"]["message"]


async def test_files_of_one_provider_are_invisible_to_the_other(
    client: httpx.AsyncClient,
) -> None:
    file_id = (await upload(client, [chat_line("a")])).json()["id"]

    response = await client.get(f"/v1beta/files/{file_id}", headers=GEMINI)

    assert response.status_code == 404
