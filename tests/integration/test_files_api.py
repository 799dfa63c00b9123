"""The OpenAI Files API end to end (docs/api.md#files-and-batches, docs/queue-semantics.md,
docs/operations.md#security): the official SDK for what works, raw HTTP for what must be refused,
and Redis inspected for what must (not) be left behind."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import openai
import orjson
import pytest
import redis
from openai import OpenAI

from anygate.broker import KeySpace, create_redis
from anygate.broker.batch_lines import BadLine
from anygate.broker.file_store import FileStore
from anygate.config import FilesConfig, RedisConfig
from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.configs import TENANT_KEYS, config_tree
from tests.support.eventually import eventually
from tests.support.stack import Stack, running_stack

MIB = 1024 * 1024
FILES = {"max_bytes": 4 * MIB, "max_lines": 2000, "chunk_bytes": 16 * 1024}
BOUNDARY = "anygate-test-boundary"


@pytest.fixture(scope="module")
def files_stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis
) -> Iterator[Stack]:
    """One API process (no workers: files need none) with small file limits; one request
    body, hence one batch line, may have 1 MB."""
    tree = config_tree(
        redis_server.url, f"t{secrets.token_hex(5)}", files=FILES, server={"max_body_bytes": MIB}
    )
    with running_stack(tmp_path_factory.mktemp("files"), tree) as stack:
        yield stack


@pytest.fixture
def stack(files_stack: Stack) -> Stack:
    """The shared stack with no file of any tenant left from an earlier test."""
    for key in file_keys(files_stack, "*"):
        files_stack._redis.delete(key)
    return files_stack


@pytest.fixture
def sdk(stack: Stack) -> Iterator[OpenAI]:
    with OpenAI(
        base_url=f"{stack.url}/v1", api_key=TENANT_KEYS["acme"], max_retries=0, timeout=30
    ) as client:
        yield client


@pytest.fixture
async def store(stack: Stack) -> AsyncIterator[FileStore]:
    namespace = stack.tree["redis"]["namespace"]
    client = create_redis(RedisConfig(url=stack.tree["redis"]["url"], namespace=namespace))
    yield FileStore(client, KeySpace(namespace), FilesConfig(**FILES))
    await client.aclose()


def file_keys(stack: Stack, kind: str) -> list[str]:
    """Keys of ``kind`` (``fdata``, ``file``, ``fbad``, ``tfiles`` or ``*``) in the stack."""
    r: redis.Redis = stack._redis
    prefix = f"ag:{{{stack.tree['redis']['namespace']}}}:"
    kinds = ("file", "fdata", "fbad", "tfiles") if kind == "*" else (kind,)
    return [key for k in kinds for key in r.scan_iter(match=f"{prefix}{k}:*", count=1000)]


def ttl_of(stack: Stack, key: str) -> int:
    return int(stack._redis.ttl(key))  # type: ignore[arg-type]


def request_line(custom_id: str, text: str = "hi", **overrides: Any) -> bytes:
    line: dict[str, Any] = {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]},
    }
    line.update(overrides)
    return orjson.dumps(line)


def jsonl(n: int, *, pad: int = 0, eol: bytes = b"\n", start: int = 0) -> bytes:
    return b"".join(request_line(f"req-{start + i}", "x" * pad) + eol for i in range(n))


def form(*parts: tuple[str, str | None, bytes]) -> bytes:
    """A multipart/form-data body with the parts in the order given (SDKs put fields first)."""
    out = b""
    for name, filename, value in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        out += value + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


async def post_form(stack: Stack, body: bytes, tenant: str = "acme") -> httpx.Response:
    async with stack.client(tenant) as client:
        return await client.post(
            "/v1/files",
            content=body,
            headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
        )


async def upload(stack: Stack, data: bytes, tenant: str = "acme") -> httpx.Response:
    async with stack.client(tenant) as client:
        return await client.post(
            "/v1/files", data={"purpose": "batch"}, files={"file": ("in.jsonl", data)}
        )


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


# --- the SDK: what works -------------------------------------------------------------------


def test_sdk_uploads_retrieves_and_downloads_a_batch_file(
    sdk: OpenAI, stack: Stack, tmp_path: Path
) -> None:
    data = jsonl(3)
    path = tmp_path / "requests.jsonl"
    path.write_bytes(data)
    with path.open("rb") as fh:
        created = sdk.files.create(file=fh, purpose="batch")
    assert created.id.startswith("file-")
    assert len(created.id) >= len("file-") + 24
    assert created.object == "file"
    assert (created.bytes, created.filename, created.purpose) == (len(data), path.name, "batch")
    assert created.status == "processed"
    assert abs(created.created_at - time.time()) < 60
    assert created.expires_at == created.created_at + FilesConfig().ttl_s
    assert sdk.files.retrieve(created.id) == created
    content = sdk.files.content(created.id)
    assert content.read() == data
    assert content.text == data.decode()
    assert len(file_keys(stack, "fdata")) == 1


def test_sdk_expires_after_shortens_a_files_life(sdk: OpenAI, stack: Stack) -> None:
    created = sdk.files.create(
        file=("a.jsonl", jsonl(1)),
        purpose="batch",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert created.expires_at == created.created_at + 3600
    ttl = ttl_of(stack, file_keys(stack, "fdata")[0])
    assert 3500 < ttl <= 3600


def test_sdk_lists_newest_first_with_a_cursor(sdk: OpenAI) -> None:
    ids = []
    for i in range(3):
        ids.append(sdk.files.create(file=(f"f{i}.jsonl", jsonl(1)), purpose="batch").id)
        time.sleep(0.005)  # distinct creation milliseconds: a stable order to assert
    page = sdk.files.list(limit=1)
    seen = [f.id for f in page.data]
    while page.has_next_page():
        page = page.get_next_page()
        seen += [f.id for f in page.data]
    assert seen == ids[::-1]
    assert [f.id for f in sdk.files.list(order="asc")] == ids
    assert [f.id for f in sdk.files.list(order="asc", after=ids[0])] == ids[1:]
    assert [f.id for f in sdk.files.list(purpose="batch")] == ids[::-1]
    assert list(sdk.files.list(purpose="batch_output")) == []


async def test_list_shape_and_bad_parameters(stack: Stack) -> None:
    assert (await upload(stack, jsonl(1))).status_code == 200
    async with stack.client() as client:
        body = (await client.get("/v1/files", params={"limit": 1})).json()
        assert body["object"] == "list"
        assert body["first_id"] == body["last_id"] == body["data"][0]["id"]
        assert body["has_more"] is False
        bad: list[tuple[dict[str, str | int], str]] = [
            ({"limit": 0}, "limit"),
            ({"limit": 10_001}, "limit"),
            ({"limit": "ten"}, "limit"),
            ({"order": "newest"}, "order"),
        ]
        for params, param in bad:
            assert error_of(await client.get("/v1/files", params=params), 400)["param"] == param
        gone = await client.get("/v1/files", params={"after": "file-nope"})
    assert gone.json()["data"] == []


async def test_a_multi_chunk_file_comes_back_byte_for_byte(stack: Stack, store: FileStore) -> None:
    """A ~3 MB file in 16 KB chunks: every chunk holds whole lines, the download is exact
    (CRLF kept), and ``lines`` yields every request with its number."""
    data = jsonl(1000, pad=3000, eol=b"\r\n")
    response = await upload(stack, data)
    assert response.status_code == 200, response.text
    file_id = response.json()["id"]
    chunks = [c async for c in store.iter_chunks(file_id)]
    assert len(chunks) > 150
    assert all(chunk.endswith(b"\r\n") for chunk in chunks)
    async with stack.client() as client:
        download = await client.get(f"/v1/files/{file_id}/content")
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["content-length"] == str(len(data))
    assert download.content == data
    lines = [(n, line) async for n, line in store.lines(file_id)]
    assert [n for n, _ in lines] == list(range(1, 1001))
    assert lines[-1][1] == request_line("req-999", "x" * 3000)


def test_sdk_delete_then_not_found(sdk: OpenAI, stack: Stack) -> None:
    created = sdk.files.create(file=("a.jsonl", jsonl(2)), purpose="batch")
    deleted = sdk.files.delete(created.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (created.id, True, "file")
    with pytest.raises(openai.NotFoundError):
        sdk.files.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        sdk.files.content(created.id)
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.files.delete(created.id)
    assert caught.value.code == "file_not_found"
    assert file_keys(stack, "*") == []


async def test_a_file_the_gateway_writes_is_listed_and_downloadable(
    stack: Stack, store: FileStore
) -> None:
    """``batch_output`` files (a batch's results) are stored by ``put`` without the upload
    checks (any lines, any size) and then served like any other file."""

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(50):
            yield b'{"not": "a request"}\nnot even json ' + str(i).encode() + b"\n"

    record = await store.put("acme", "batch_output", "batch_x_output.jsonl", pieces())
    assert (record.purpose, record.lines, record.chunks) == ("batch_output", 100, 1)
    expected = b"".join([p async for p in pieces()])
    async with stack.client() as client:
        listed = (await client.get("/v1/files", params={"purpose": "batch_output"})).json()
        content = (await client.get(f"/v1/files/{record.id}/content")).content
    assert [f["id"] for f in listed["data"]] == [record.id]
    assert content == expected
    assert await store.bad_lines(record.id) == []


# --- what is refused, and leaves nothing behind ---------------------------------------------


async def test_unidentifiable_lines_are_refused_with_every_line_numbered(stack: Stack) -> None:
    lines = [request_line("a"), b"not json", request_line("b"), b"[1]", request_line("a")]
    error = error_of(await upload(stack, b"\n".join(lines)), 400)
    assert (error["param"], error["code"]) == ("file", "invalid_batch_file")
    assert "line 2: not valid JSON" in error["message"]
    assert "line 4: expected a JSON object, got an array" in error["message"]
    assert "line 5: custom_id 'a' was already used on line 1" in error["message"]
    assert "line 1:" not in error["message"]
    assert file_keys(stack, "*") == []


def test_a_refusal_names_the_invalid_lines_found_beside_the_unparseable_one(
    sdk: OpenAI, stack: Stack
) -> None:
    """One unparseable line refuses the upload; the two identifiable-but-invalid lines the
    same pass found are numbered in the same refusal, so the caller fixes all three at once."""
    lines = [
        request_line("ok-1"),
        request_line("get", method="GET"),
        b"not json",
        request_line("ok-2"),
        request_line("bad-url", url="/v1/images"),
    ]
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.files.create(file=("mixed.jsonl", b"\n".join(lines)), purpose="batch")
    error = refused.value
    assert (error.param, error.code) == ("file", "invalid_batch_file")
    message = str(error.body["message"] if isinstance(error.body, dict) else error.message)
    assert "1 line of the batch file cannot be identified" in message
    assert "2 more lines (named by custom_id) are requests that cannot run" in message
    listed = message.split(":\n", 1)[1].splitlines()
    assert [text.split(":")[0] for text in listed] == [
        "line 2 (custom_id 'get')",
        "line 3",
        "line 5 (custom_id 'bad-url')",
    ]
    assert listed[0].endswith("method: expected 'POST', got 'GET'")
    assert listed[1].startswith("line 3: not valid JSON")
    assert "url: expected one of /v1/chat/completions, /v1/embeddings" in listed[2]
    assert file_keys(stack, "*") == []


async def test_identifiable_but_invalid_lines_are_kept_for_the_error_file(
    stack: Stack, store: FileStore
) -> None:
    lines = [
        request_line("ok-1"),
        request_line("get", method="GET"),
        request_line("ok-2"),
        request_line("bad-url", url="/v1/images"),
        request_line("no-model", body={"messages": []}),
    ]
    response = await upload(stack, b"\n".join(lines))
    assert response.status_code == 200, response.text
    file_id = response.json()["id"]
    bad = await store.bad_lines(file_id)
    assert [(b.line, b.custom_id) for b in bad] == [(2, "get"), (4, "bad-url"), (5, "no-model")]
    assert bad[0] == BadLine(2, "get", "method: expected 'POST', got 'GET'")
    assert bad[2].reason == "body.model: expected a string, got null"
    assert ttl_of(stack, file_keys(stack, "fbad")[0]) > 0
    assert [n async for n, _ in store.lines(file_id)] == [1, 2, 3, 4, 5]


async def test_more_lines_than_the_limit_are_refused(stack: Stack) -> None:
    error = error_of(await upload(stack, jsonl(2001)), 400)
    assert (error["param"], error["code"]) == ("file", "too_many_lines")
    assert file_keys(stack, "*") == []
    assert (await upload(stack, jsonl(2000))).status_code == 200


async def test_a_line_longer_than_a_request_may_be_is_refused(stack: Stack) -> None:
    """Such a line would sit in memory until its end: it is refused at 1 MB, not read on."""
    data = jsonl(3) + request_line("huge", "x" * (2 * MIB)) + b"\n"
    error = error_of(await upload(stack, data), 400)
    assert error["code"] == "line_too_long"
    assert "line 4 is longer than" in error["message"]
    assert file_keys(stack, "*") == []


@pytest.mark.parametrize(
    ("parts", "param"),
    [
        ([("purpose", None, b"batch")], "file"),
        ([("file", "a.jsonl", jsonl(1))], "purpose"),
        ([("purpose", None, b"fine-tune"), ("file", "a.jsonl", jsonl(1))], "purpose"),
        ([("purpose", None, b"batch_output"), ("file", "a.jsonl", jsonl(1))], "purpose"),
        # sent after the file: the file's chunks were stored, and must be dropped
        ([("file", "a.jsonl", jsonl(500, pad=100)), ("purpose", None, b"vision")], "purpose"),
        ([("purpose", None, b"batch"), ("file", "a.jsonl", b"\n\n")], "file"),
    ],
    ids=["no-file", "no-purpose", "fine-tune", "batch-output", "purpose-last", "empty-file"],
)
async def test_a_bad_form_is_refused_naming_the_field(
    stack: Stack, parts: list[tuple[str, str | None, bytes]], param: str
) -> None:
    error = error_of(await post_form(stack, form(*parts)), 400)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert file_keys(stack, "*") == []


@pytest.mark.parametrize(
    ("anchor", "seconds"),
    [(b"created_at", b"10"), (b"created_at", "\u00b2".encode()), (b"now", b"3600")],
)
async def test_a_bad_expiry_is_refused(stack: Stack, anchor: bytes, seconds: bytes) -> None:
    body = form(
        ("purpose", None, b"batch"),
        ("expires_after[anchor]", None, anchor),
        ("expires_after[seconds]", None, seconds),
        ("file", "a.jsonl", jsonl(1)),
    )
    assert error_of(await post_form(stack, body), 400)["param"].startswith("expires_after.")


async def test_a_boundary_longer_than_allowed_is_refused(stack: Stack) -> None:
    async with stack.client() as client:
        response = await client.post(
            "/v1/files",
            content=b"--" + b"b" * 300,
            headers={"content-type": "multipart/form-data; boundary=" + "b" * 300},
        )
    assert "malformed multipart" in error_of(response, 400)["message"]


async def test_purpose_may_follow_the_file(stack: Stack) -> None:
    body = form(("file", "late.jsonl", jsonl(300, pad=100)), ("purpose", None, b"batch"))
    response = await post_form(stack, body)
    assert response.status_code == 200, response.text
    assert response.json()["filename"] == "late.jsonl"


async def test_a_body_that_is_not_a_multipart_form_is_refused(stack: Stack) -> None:
    async with stack.client() as client:
        response = await client.post("/v1/files", json={"file": "x", "purpose": "batch"})
    assert "multipart/form-data" in error_of(response, 400)["message"]
    truncated = form(("purpose", None, b"batch"), ("file", "a.jsonl", jsonl(2)))[:-20]
    assert "ended too early" in error_of(await post_form(stack, truncated), 400)["message"]
    assert file_keys(stack, "*") == []


async def test_another_tenants_file_is_not_found(stack: Stack) -> None:
    file_id = (await upload(stack, jsonl(1), tenant="acme")).json()["id"]
    async with stack.client("globex") as other:
        never = await other.get("/v1/files/file-neverexisted000000000000")
        answers = [
            await other.get(f"/v1/files/{file_id}"),
            await other.get(f"/v1/files/{file_id}/content"),
            await other.delete(f"/v1/files/{file_id}"),
        ]
        listed = (await other.get("/v1/files")).json()["data"]
    expected = error_of(never, 404)
    for answer in answers:
        error = error_of(answer, 404)
        assert error["code"] == "file_not_found"
        assert error["message"] == expected["message"].replace(
            "file-neverexisted000000000000", file_id
        )
    assert listed == []
    async with stack.client("acme") as owner:
        assert (await owner.get(f"/v1/files/{file_id}")).status_code == 200


# --- streaming: limits hit mid-body, clients that leave --------------------------------------


async def open_upload(
    stack: Stack, content_length: int | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw connection with the request head and the form up to the file's bytes sent."""
    url = urlsplit(stack.url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    framing = (
        f"Content-Length: {content_length}" if content_length else "Transfer-Encoding: chunked"
    )
    writer.write(
        f"POST /v1/files HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Authorization: Bearer {TENANT_KEYS['acme']}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n{framing}\r\n\r\n".encode()
    )
    head = form(("purpose", None, b"batch"), ("file", "big.jsonl", b""))
    head = head[: head.rindex(f"--{BOUNDARY}".encode()) - 2]  # open file part, no end
    send(writer, head, chunked=content_length is None)
    await writer.drain()
    return reader, writer


def send(writer: asyncio.StreamWriter, data: bytes, *, chunked: bool) -> None:
    writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunked else data)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    body: dict[str, Any] = orjson.loads(await reader.readexactly(length))
    return status, body


async def test_an_oversized_upload_is_refused_before_its_body_ends(stack: Stack) -> None:
    """Chunked, so no length is declared: the 413 comes once 4 MB have passed, while the
    body is still open (its end is never sent), and no chunk stays in Redis."""
    reader, writer = await open_upload(stack, content_length=None)

    async def sender() -> None:
        try:
            for i in range(100):  # 16 lines of 4 KB each: 6.4 MB in all
                send(writer, jsonl(16, pad=4000, start=16 * i), chunked=True)
                await writer.drain()
        except ConnectionError:
            pass

    sending = asyncio.create_task(sender())
    try:
        status, body = await read_response(reader)
    finally:
        await sending
        writer.close()
    assert status == 413
    assert (body["error"]["param"], body["error"]["code"]) == ("file", "file_too_large")
    assert file_keys(stack, "*") == []


async def test_a_declared_oversized_body_is_refused_before_any_byte_of_it(stack: Stack) -> None:
    reader, writer = await open_upload(stack, content_length=100 * MIB)
    try:
        status, body = await read_response(reader)
    finally:
        writer.close()
    assert status == 413
    assert body["error"]["code"] == "file_too_large"


async def test_an_abandoned_upload_leaves_no_chunks(stack: Stack) -> None:
    reader, writer = await open_upload(stack, content_length=3 * MIB)
    for i in range(16):  # 1 MB of the 3
        send(writer, jsonl(16, pad=4000, start=16 * i), chunked=False)
        await writer.drain()
    await eventually(lambda: file_keys(stack, "fdata"))  # some chunks were stored...
    writer.transport.abort()  # ...and then the client vanishes mid-body
    del reader
    await eventually(lambda: file_keys(stack, "*") == [])
