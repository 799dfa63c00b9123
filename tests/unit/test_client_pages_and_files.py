"""Lists followed page by page, batch requests written as JSONL and uploaded (each try sends the
whole file), and batch results read from the output and error files; both clients against a
scripted gateway."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from anygate.client import Batch, ServiceUnavailableError, UnexpectedResponseError
from anygate.client._calls import SpooledJsonl, write_jsonl
from tests.support.client_kinds import KINDS, open_client, record_pauses

JOBS = [{"id": f"job_{n}", "status": "succeeded"} for n in range(7, 0, -1)]


def _pages(request: httpx.Request) -> httpx.Response:
    """``/v1/jobs`` as the gateway pages it: newest first, ``after`` the last id seen."""
    limit = int(request.url.params["limit"])
    after = request.url.params.get("after")
    start = next(i + 1 for i, j in enumerate(JOBS) if j["id"] == after) if after else 0
    data = JOBS[start : start + limit]
    return httpx.Response(
        200,
        json={
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": start + limit < len(JOBS),
        },
    )


@pytest.mark.parametrize("kind", KINDS)
async def test_list_follows_every_page(kind: str) -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _pages(request)

    async with open_client(kind, "http://gw", "k", transport=httpx.MockTransport(handle)) as ag:
        ids = [job.id async for job in ag.list(page_size=3, status="succeeded")]
        assert ids == [j["id"] for j in JOBS]
        assert [r.url.params.get("after") for r in seen] == [None, "job_5", "job_2"]
        assert {r.url.params["status"] for r in seen} == {"succeeded"}
        seen.clear()
        limited = [job.id async for job in ag.list(page_size=3, limit=4)]
    assert limited == ["job_7", "job_6", "job_5", "job_4"]
    assert [int(r.url.params["limit"]) for r in seen] == [3, 1], "no more asked than needed"


@pytest.mark.parametrize("kind", KINDS)
async def test_list_checks_its_page_size(kind: str) -> None:
    transport = httpx.MockTransport(_pages)
    async with open_client(kind, "http://gw", "k", transport=transport) as ag:
        with pytest.raises(ValueError, match="page_size"):
            [job async for job in ag.list(page_size=101)]


def test_requests_are_written_one_line_each_as_they_come() -> None:
    produced: list[int] = []

    def requests() -> Iterator[dict[str, Any]]:
        for n in range(3):
            produced.append(n)
            yield {"custom_id": f"r{n}", "body": {"text": "é"}}

    out = io.BytesIO()
    assert write_jsonl(requests(), out) == 3
    lines = out.getvalue().splitlines()
    assert [json.loads(line)["custom_id"] for line in lines] == ["r0", "r1", "r2"]
    assert b"\\u" not in out.getvalue(), "UTF-8 as is"


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("a string", "requests\\[1\\]: expected a request object"),
        ({"x": float("nan")}, "requests\\[1\\]: not JSON"),
    ],
)
def test_a_bad_request_is_named_by_its_index(item: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        write_jsonl([{"ok": 1}, item], io.BytesIO())


def test_a_spool_reads_the_same_bytes_for_each_try() -> None:
    spool = SpooledJsonl({"custom_id": str(n)} for n in range(1000))
    try:
        with spool.open() as first:
            one = first.read()
        with spool.open() as second:
            two = second.read()
    finally:
        spool.close()
    assert one == two
    assert one.count(b"\n") == spool.lines == 1000


def _file_parts(request: httpx.Request) -> tuple[str, bytes, str]:
    """(purpose, file bytes, filename) of a multipart upload, read the simple way for tests."""
    body = request.read()
    boundary = request.headers["content-type"].split("boundary=")[1].encode()
    purpose, content, filename = "", b"", ""
    for part in body.split(b"--" + boundary):
        head, _, data = part.partition(b"\r\n\r\n")
        data = data.removesuffix(b"\r\n")
        if b'name="purpose"' in head:
            purpose = data.decode()
        elif b'name="file"' in head:
            content = data
            filename = head.split(b'filename="')[1].split(b'"')[0].decode()
    return purpose, content, filename


@pytest.mark.parametrize("kind", KINDS)
async def test_an_upload_from_an_iterable_is_sent_whole_on_each_try(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_pauses(monkeypatch)
    uploads: list[tuple[str, bytes, str]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        uploads.append(_file_parts(request))
        if len(uploads) == 1:
            return httpx.Response(
                503, json={"error": {"message": "busy"}}, headers={"retry-after": "0"}
            )
        return httpx.Response(
            200,
            json={
                "id": "file_1",
                "object": "file",
                "bytes": 9,
                "filename": "requests.jsonl",
                "purpose": "batch",
            },
        )

    lines = ({"custom_id": f"r{n}", "method": "POST"} for n in range(50))
    async with open_client(kind, "http://gw", "k", transport=httpx.MockTransport(handle)) as ag:
        uploaded = await ag.upload_file(lines)
    assert uploaded.id == "file_1"
    assert len(uploads) == 2
    assert uploads[0] == uploads[1], "the retry sent the same file"
    purpose, content, filename = uploads[1]
    assert (purpose, filename) == ("batch", "requests.jsonl")
    assert [json.loads(line)["custom_id"] for line in content.splitlines()] == [
        f"r{n}" for n in range(50)
    ]


@pytest.mark.parametrize("kind", KINDS)
async def test_an_upload_from_a_path_or_bytes(kind: str, tmp_path: Path) -> None:
    uploads: list[tuple[str, bytes, str]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        uploads.append(_file_parts(request))
        return httpx.Response(200, json={"id": "file_1", "filename": uploads[-1][2]})

    path = tmp_path / "mine.jsonl"
    path.write_bytes(b'{"custom_id": "a"}\n')
    async with open_client(kind, "http://gw", "k", transport=httpx.MockTransport(handle)) as ag:
        await ag.upload_file(path)
        await ag.upload_file(b'{"custom_id": "b"}\n', filename="b.jsonl")
        with pytest.raises(ValueError, match="no such file"):
            await ag.upload_file(tmp_path / "missing.jsonl")
    assert uploads == [
        ("batch", b'{"custom_id": "a"}\n', "mine.jsonl"),
        ("batch", b'{"custom_id": "b"}\n', "b.jsonl"),
    ]


OUTPUT = b"".join(
    json.dumps(line).encode() + b"\n"
    for line in [
        {
            "id": "r1",
            "custom_id": "a",
            "response": {"status_code": 200, "body": {"ok": 1}},
            "error": None,
        },
        {
            "id": "r2",
            "custom_id": "b",
            "response": {"status_code": 200, "body": {"ok": 2}},
            "error": None,
        },
    ]
)
ERRORS = (
    json.dumps(
        {
            "id": "r3",
            "custom_id": "c",
            "response": None,
            "error": {"code": "batch_expired", "message": "late"},
        }
    )
    + "\n\n"
).encode()


@pytest.mark.parametrize("kind", KINDS)
async def test_batch_results_read_the_output_then_the_error_file(kind: str) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        files = {
            "/v1/files/out/content": OUTPUT,
            "/v1/files/err/content": ERRORS,
            "/v1/files/bad/content": b"{nope\n",
        }
        if request.url.path in files:
            return httpx.Response(200, content=files[request.url.path])
        return httpx.Response(
            200,
            json={
                "id": "batch_1",
                "status": "completed",
                "output_file_id": "out",
                "error_file_id": "err",
            },
        )

    async with open_client(kind, "http://gw", "k", transport=httpx.MockTransport(handle)) as ag:
        results = [r async for r in ag.batch_results("batch_1")]
        broken = Batch.from_api({"id": "b", "status": "completed", "output_file_id": "bad"})
        with pytest.raises(UnexpectedResponseError, match="line 1"):
            [r async for r in ag.batch_results(broken)]
    assert [(r.custom_id, r.ok) for r in results] == [("a", True), ("b", True), ("c", False)]
    assert results[2].error == {"code": "batch_expired", "message": "late"}


@pytest.mark.parametrize("kind", KINDS)
async def test_wait_batch_reports_progress_until_the_end(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pauses = record_pauses(monkeypatch)
    states = ["validating", "in_progress", "in_progress", "finalizing", "completed"]
    polls: list[int] = []

    def handle(_request: httpx.Request) -> httpx.Response:
        polls.append(1)
        n = len(polls) - 1
        return httpx.Response(
            200,
            json={
                "id": "batch_1",
                "status": states[n],
                "request_counts": {"total": 4, "completed": n, "failed": 0},
            },
        )

    seen: list[Batch] = []
    async with open_client(kind, "http://gw", "k", transport=httpx.MockTransport(handle)) as ag:
        done = await ag.wait_batch("batch_1", progress=seen.append, poll_s=0.5)
    assert done.status == "completed"
    assert [b.status for b in seen] == states
    assert [b.request_counts.completed for b in seen] == [0, 1, 2, 3, 4]
    assert pauses == [0.5] * 4


@pytest.mark.parametrize("kind", KINDS)
async def test_a_failed_upload_is_the_typed_error(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_pauses(monkeypatch)

    def handle(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            503, json={"error": {"message": "down"}}, headers={"retry-after": "0"}
        )

    async with open_client(
        kind, "http://gw", "k", transport=httpx.MockTransport(handle), max_retries=1
    ) as ag:
        with pytest.raises(ServiceUnavailableError):
            await ag.submit_batch([{"custom_id": "a"}])
