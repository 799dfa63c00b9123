"""The OpenAI Files API (docs/api.md#files-and-batches): upload, list, retrieve, download and delete
batch files.

An upload is streamed: the body goes from the socket through python-multipart's push parser
into line-aligned chunks in Redis (``anygate.broker.file_store``), one body piece at a time, so
neither a whole file nor a whole form is ever held. The size limit answers 413 the moment it is
passed; a refused, malformed or abandoned upload leaves nothing behind.

Only ``purpose=batch`` is accepted: anygate keeps files for its Batch API and nothing else
(``batch_output`` files are written by the gateway itself). Other OpenAI purposes
(``assistants``, ``fine-tune``, ``vision``, ``user_data``, ``evals``) are a 400 that says so,
rather than bytes stored in Redis that nothing would ever read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from anygate.api.gateway import Gateway, gateway_of
from anygate.api.paging import list_page, page_limit
from anygate.api.responses import JSONResponse
from anygate.broker.errors import InvalidRequestError, NotFoundError, PayloadTooLargeError
from anygate.broker.file_store import VALIDATED_PURPOSE, FileRecord, FileStore, FileWriter
from anygate.config import FilesConfig

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

FORM_OVERHEAD = 64 * 1024
"""Bytes a form may carry besides the file (boundaries, part headers, small fields)."""
MAX_FIELD_BYTES = 1024
MAX_PARTS = 16
MAX_FILENAME = 255
OPENAI_PURPOSES = ("assistants", "fine-tune", "vision", "user_data", "evals")
MIN_EXPIRY_S, MAX_EXPIRY_S = 3600, 30 * 86_400
"""``expires_after[seconds]`` bounds, as OpenAI's."""
MAX_LIST = 10_000


def _not_found(file_id: str) -> NotFoundError:
    """The same answer for a file that never existed, expired, or is another tenant's."""
    return NotFoundError(f"No such File object: {file_id}", param="file_id", code="file_not_found")


def file_store(gw: Gateway) -> FileStore:
    """The files of this gateway's configuration (the Files API, batches, the console)."""
    return FileStore(gw.redis, gw.broker.keys, gw.config.files)


class UploadForm:
    """A multipart/form-data body parsed as it arrives: the ``file`` part's bytes are queued
    for the caller to store (``take``), the other parts are small text fields.

    python-multipart calls back synchronously from ``feed``; a problem raises from there, so
    the upload stops at the first byte that makes it invalid."""

    def __init__(self, boundary: bytes) -> None:
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.has_file = False
        self.ended = False
        self._pending: list[bytes] = []
        self._parts = 0
        self._name: str | None = None
        self._is_file = False
        self._value = bytearray()
        self._header = bytearray()
        self._header_value = bytearray()
        self._disposition: dict[bytes, bytes] | None = None
        try:
            self._parser = MultipartParser(boundary, self._callbacks())
        except FormParserError as exc:  # a boundary longer than RFC 2046 allows
            raise InvalidRequestError(f"malformed multipart/form-data body: {exc}") from None

    def _callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._header.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._header_value.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def feed(self, data: bytes) -> None:
        try:
            self._parser.write(data)
        except FormParserError as exc:
            raise InvalidRequestError(f"malformed multipart/form-data body: {exc}") from None

    def take(self) -> list[bytes]:
        """The file bytes parsed since the last call."""
        pending, self._pending = self._pending, []
        return pending

    def _part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise InvalidRequestError(f"the form has more than {MAX_PARTS} parts")
        self._name, self._is_file, self._disposition = None, False, None
        self._value.clear()

    def _header_end(self) -> None:
        if bytes(self._header).strip().lower() == b"content-disposition":
            _kind, self._disposition = parse_options_header(bytes(self._header_value))
        self._header.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        options = self._disposition or {}
        if b"name" not in options:
            raise InvalidRequestError("a form part has no Content-Disposition name")
        self._name = options[b"name"].decode("utf-8", "replace")
        if self._name != "file":
            return
        if self.has_file:
            raise InvalidRequestError("file: send one file per upload", param="file")
        self.has_file = self._is_file = True
        raw = options.get(b"filename")
        self.filename = raw.decode("utf-8", "replace") if raw else "file.jsonl"
        if len(self.filename) > MAX_FILENAME:
            raise InvalidRequestError(
                f"file: the filename is longer than {MAX_FILENAME} characters", param="file"
            )

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            self._pending.append(data[start:end])
            return
        self._value += data[start:end]
        if len(self._value) > MAX_FIELD_BYTES:
            raise InvalidRequestError(
                f"{self._name}: longer than {MAX_FIELD_BYTES} bytes", param=self._name
            )

    def _part_end(self) -> None:
        if not self._is_file and self._name is not None:
            self.fields[self._name] = self._value.decode("utf-8", "replace")

    def _end(self) -> None:
        self.ended = True


def _boundary(request: Request) -> bytes:
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InvalidRequestError(
            "expected a multipart/form-data body with the fields 'file' and 'purpose'"
        )
    return boundary


def check_purpose(fields: dict[str, str]) -> None:
    purpose = fields.get("purpose")
    if purpose is None:
        raise InvalidRequestError("purpose: missing; expected 'batch'", param="purpose")
    if purpose == VALIDATED_PURPOSE:
        return
    if purpose == "batch_output":
        why = "'batch_output' files are written by the gateway, not uploaded"
    elif purpose in OPENAI_PURPOSES:
        why = f"anygate keeps files for its Batch API only; {purpose!r} is not supported"
    else:
        why = f"unknown purpose {purpose[:64]!r}"
    raise InvalidRequestError(f"purpose: {why}; expected 'batch'", param="purpose")


def expiry_s(fields: dict[str, str], default_s: int) -> int:
    """OpenAI's ``expires_after`` (anchor ``created_at``, 3600-2592000 s); never longer than
    ``files.ttl_s``, which bounds what Redis holds."""
    anchor = fields.get("expires_after[anchor]")
    seconds = fields.get("expires_after[seconds]")
    if anchor is None and seconds is None:
        return default_s
    if anchor != "created_at":
        raise InvalidRequestError(
            "expires_after.anchor: expected 'created_at'", param="expires_after.anchor"
        )
    try:
        value = int(seconds or "")
    except ValueError:
        raise InvalidRequestError(
            "expires_after.seconds: expected an integer", param="expires_after.seconds"
        ) from None
    if not MIN_EXPIRY_S <= value <= MAX_EXPIRY_S:
        raise InvalidRequestError(
            f"expires_after.seconds: must be between {MIN_EXPIRY_S} and {MAX_EXPIRY_S}",
            param="expires_after.seconds",
        )
    return min(value, default_s)


async def create_file(request: Request) -> Response:
    gw = gateway_of(request)
    tenant = await gw.auth.tenant(request, "batches")
    limits = gw.config.files
    form = UploadForm(_boundary(request))
    declared = request.headers.get("content-length")
    if (
        declared
        and declared.isascii()
        and declared.isdigit()
        and int(declared) > limits.max_bytes + FORM_OVERHEAD
    ):
        raise _too_large(limits.max_bytes)
    writer = file_store(gw).writer(
        tenant.id, VALIDATED_PURPOSE, max_line_bytes=gw.config.server.max_body_bytes
    )
    try:
        record = await _receive(request, form, writer, limits)
    except ClientDisconnect:
        await asyncio.shield(writer.abort())
        raise InvalidRequestError("the client went away before sending its body") from None
    except BaseException:
        await asyncio.shield(writer.abort())
        raise
    return JSONResponse(record.to_api())


async def _receive(
    request: Request, form: UploadForm, writer: FileWriter, limits: FilesConfig
) -> FileRecord:
    """Parse and store the body piece by piece; then check the form and commit the file."""
    body_limit = limits.max_bytes + FORM_OVERHEAD
    received = 0
    purpose_checked = False
    async for piece in request.stream():
        received += len(piece)
        if received > body_limit:
            raise _too_large(limits.max_bytes)
        form.feed(piece)
        if not purpose_checked and "purpose" in form.fields:
            check_purpose(form.fields)  # sent before the file (as SDKs do): refuse early
            purpose_checked = True
        for data in form.take():
            await writer.write(data)
    if not form.ended:
        raise InvalidRequestError("malformed multipart/form-data body: it ended too early")
    if not form.has_file:
        raise InvalidRequestError(
            "file: missing; send the file as the form field 'file'", param="file"
        )
    check_purpose(form.fields)
    ttl_s = expiry_s(form.fields, limits.ttl_s)
    return await writer.commit(form.filename or "file.jsonl", ttl_s=ttl_s)


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"file: larger than the {limit}-byte limit for a file", param="file", code="file_too_large"
    )


async def list_files(request: Request) -> Response:
    gw = gateway_of(request)
    tenant = await gw.auth.tenant(request, "batches")
    params = request.query_params
    limit = page_limit(request, default=MAX_LIST, maximum=MAX_LIST)
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequestError("order: expected 'asc' or 'desc'", param="order")
    records, has_more = await file_store(gw).list(
        tenant.id,
        purpose=params.get("purpose") or None,
        limit=limit,
        after=params.get("after") or None,
        order="asc" if order == "asc" else "desc",
    )
    data: list[dict[str, Any]] = [r.to_api() for r in records]
    return list_page(data, has_more)


async def _owned(request: Request) -> tuple[FileStore, FileRecord]:
    gw = gateway_of(request)
    tenant = await gw.auth.tenant(request, "batches")
    file_id = request.path_params["file_id"]
    store = file_store(gw)
    record = await store.get(tenant.id, file_id)
    if record is None:
        raise _not_found(file_id)
    return store, record


async def retrieve_file(request: Request) -> Response:
    _, record = await _owned(request)
    return JSONResponse(record.to_api())


async def file_content(request: Request) -> Response:
    store, record = await _owned(request)
    return await file_response(store, record)


async def file_response(
    store: FileStore, record: FileRecord, *, attachment: str | None = None
) -> Response:
    """The bytes as uploaded, streamed chunk by chunk (``GET /v1/files/{id}/content``, and the
    console's download links, which name the file with ``attachment``). The first chunk is
    read before the answer starts, so a file deleted in between is still a clean 404; one
    deleted later cuts the body short of its Content-Length, which every client notices."""
    first = await store.chunk(record.id, 0) if record.chunks else b""
    if first is None:
        raise _not_found(record.id)
    headers = {"content-length": str(record.bytes)}
    if attachment is not None:
        headers["content-disposition"] = f'attachment; filename="{attachment}"'
    return StreamingResponse(
        _content(store, record, first), media_type="application/octet-stream", headers=headers
    )


async def _content(store: FileStore, record: FileRecord, first: bytes) -> AsyncIterator[bytes]:
    if first:
        yield first
    for index in range(1, record.chunks):
        chunk = await store.chunk(record.id, index)
        if chunk is None:
            raise _not_found(record.id)
        yield chunk


async def delete_file(request: Request) -> Response:
    gw = gateway_of(request)
    tenant = await gw.auth.tenant(request, "batches")
    file_id = request.path_params["file_id"]
    if not await file_store(gw).delete(tenant.id, file_id):
        raise _not_found(file_id)
    return JSONResponse({"id": file_id, "object": "file", "deleted": True})


ROUTES = [
    Route("/v1/files", create_file, methods=["POST"]),
    Route("/v1/files", list_files, methods=["GET"]),
    Route("/v1/files/{file_id}", retrieve_file, methods=["GET"]),
    Route("/v1/files/{file_id}", delete_file, methods=["DELETE"]),
    Route("/v1/files/{file_id}/content", file_content, methods=["GET"]),
]
