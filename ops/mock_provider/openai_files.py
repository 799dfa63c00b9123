"""OpenAI's Files API as the Batch API needs it: upload, retrieve, content, list, delete.

Shapes follow openai-python's `FileObject` and `FileDeleted` and the cursor-paged list
(`data`, `first_id`, `last_id`, `has_more`). A `batch` upload is checked line by line as JSON
objects, so a malformed file fails at upload with the line named rather than later.
"""

from __future__ import annotations

import time
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import orjson

from anygate.ops.mock_provider import openai_wire
from anygate.ops.mock_provider.batch_store import BatchBook, StoredFile, new_id
from anygate.ops.mock_provider.common import BadRequestError
from anygate.ops.mock_provider.exchange import Exchange, Incoming, json_exchange, json_headers

_JSON = b"application/json"
PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data", "evals"})
BATCH_FILE_TTL_S = 30 * 24 * 3600
"""OpenAI expires `batch` files after 30 days unless told otherwise."""
_MAX_LIST = 10_000


class NotFoundError(Exception):
    """An id the mock does not hold; rendered as OpenAI's 404."""


def ok(incoming: Incoming, body: dict[str, Any]) -> Exchange:
    return json_exchange(_JSON, incoming.request_id, 200, body)


def error(incoming: Incoming, status: int, message: str, param: str | None = None) -> Exchange:
    return json_exchange(
        _JSON, incoming.request_id, status, openai_wire.error_body(message, param=param)
    )


def file_object(stored: StoredFile) -> dict[str, Any]:
    created = int(stored.created_at)
    body: dict[str, Any] = {
        "id": stored.id,
        "object": "file",
        "bytes": len(stored.data),
        "created_at": created,
        "filename": stored.filename,
        "purpose": stored.purpose,
        "status": "processed",
        "status_details": None,
        "expires_at": None,
    }
    if stored.purpose in ("batch", "batch_output"):
        body["expires_at"] = created + BATCH_FILE_TTL_S
    return body


def lookup(book: BatchBook, file_id: str) -> StoredFile:
    stored = book.files.get(file_id)
    if stored is None or stored.provider != "openai":
        raise NotFoundError(f"No such File object: {file_id}")
    return stored


def _form(incoming: Incoming) -> dict[str, EmailMessage]:
    """The multipart form's parts by field name, parsed with the standard library."""
    content_type = incoming.header(b"content-type") or b""
    if not content_type.lower().startswith(b"multipart/form-data"):
        raise BadRequestError("The request must be multipart/form-data.", param="file")
    head = b"Content-Type: " + content_type + b"\r\nMIME-Version: 1.0\r\n\r\n"
    message = BytesParser(policy=HTTP).parsebytes(head + incoming.raw_body)
    parts: dict[str, EmailMessage] = {}
    if isinstance(message, EmailMessage) and message.is_multipart():
        for part in message.iter_parts():
            if isinstance(part, EmailMessage):
                name = part.get_param("name", header="content-disposition")
                if isinstance(name, str):
                    parts[name] = part
    return parts


def _payload(part: EmailMessage) -> bytes:
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def check_batch_jsonl(data: bytes) -> None:
    """Each non-empty line must be a JSON object; the first bad one is named."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise BadRequestError("The file must be UTF-8 encoded JSONL.", param="file") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise BadRequestError("The batch input file is empty.", param="file")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            parsed = orjson.loads(line)
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            message = f"Invalid JSONL: line {number} is not a JSON object."
            raise BadRequestError(message, param="file")


def create(incoming: Incoming, book: BatchBook) -> Exchange:
    parts = _form(incoming)
    purpose_part, file_part = parts.get("purpose"), parts.get("file")
    if file_part is None:
        raise BadRequestError("Missing required parameter: 'file'.", param="file")
    if purpose_part is None:
        raise BadRequestError("Missing required parameter: 'purpose'.", param="purpose")
    purpose = _payload(purpose_part).decode(errors="replace").strip()
    if purpose not in PURPOSES:
        allowed = ", ".join(f"'{name}'" for name in sorted(PURPOSES))
        message = f"Invalid value for 'purpose': '{purpose}'. Expected one of {allowed}."
        raise BadRequestError(message, param="purpose")
    filename = file_part.get_filename() or "upload"
    data = _payload(file_part)
    if purpose == "batch":
        if not filename.endswith(".jsonl"):
            raise BadRequestError("Invalid file format for Batch API. Must be .jsonl", param="file")
        check_batch_jsonl(data)
    stored = StoredFile(
        id=new_id("file-", 11),
        provider="openai",
        filename=filename,
        purpose=purpose,
        data=data,
        created_at=time.time(),
    )
    return ok(incoming, file_object(book.add_file(stored)))


def content(incoming: Incoming, stored: StoredFile) -> Exchange:
    headers = json_headers(b"application/octet-stream", incoming.request_id)
    return Exchange(status=200, headers=headers, body=stored.data)


def delete(incoming: Incoming, book: BatchBook, stored: StoredFile) -> Exchange:
    with book.lock:
        book.files.pop(stored.id, None)
    return ok(incoming, {"id": stored.id, "object": "file", "deleted": True})


def cursor_page(items: list[dict[str, Any]], incoming: Incoming) -> dict[str, Any]:
    """One page of OpenAI's cursor pagination over `items` (already in list order)."""
    limit_text = incoming.query("limit")
    limit = _MAX_LIST
    if limit_text is not None:
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= _MAX_LIST:
            raise BadRequestError(
                f"Invalid 'limit': must be between 1 and {_MAX_LIST}.", param="limit"
            )
        limit = int(limit_text)
    after = incoming.query("after")
    if after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }


def listing(incoming: Incoming, book: BatchBook) -> Exchange:
    purpose = incoming.query("purpose")
    order = incoming.query("order") or "desc"
    if order not in ("asc", "desc"):
        raise BadRequestError("Invalid 'order': expected 'asc' or 'desc'.", param="order")
    with book.lock:
        files = [
            stored
            for stored in book.files.values()
            if stored.provider == "openai" and (purpose is None or stored.purpose == purpose)
        ]
    if order == "desc":
        files.reverse()
    return ok(incoming, cursor_page([file_object(stored) for stored in files], incoming))
