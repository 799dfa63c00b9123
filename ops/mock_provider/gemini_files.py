"""Gemini's Files API as batch mode needs it, with google-genai's resumable upload protocol.

`client.files.upload` first POSTs `/upload/v1beta/files` with `X-Goog-Upload-Protocol:
resumable` and `X-Goog-Upload-Command: start`, reads the session URL from the
`x-goog-upload-url` response header, then POSTs the bytes there with `X-Goog-Upload-Command:
upload, finalize` and expects `x-goog-upload-status: final` and a `{"file": File}` body.
`client.files.download` GETs `files/{id}:download?alt=media` under the API version; the REST
API's `/download/v1beta/...` form is served too.
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from anygate.ops.mock_provider import gemini_wire
from anygate.ops.mock_provider.batch_store import BatchBook, StoredFile, new_id
from anygate.ops.mock_provider.common import BadRequestError
from anygate.ops.mock_provider.exchange import Exchange, Incoming, json_exchange, json_headers

_JSON = b"application/json; charset=UTF-8"
FILE_TTL_S = 48 * 3600
"""Gemini deletes uploaded files after 48 hours."""


class GeminiNotFoundError(Exception):
    """A name the mock does not hold; rendered as Google's 404 NOT_FOUND."""


@dataclass(slots=True)
class PendingUpload:
    """A resumable session between `start` and `finalize`."""

    display_name: str | None
    mime_type: str
    size: int | None
    data: bytearray = field(default_factory=bytearray)


def timestamp(at: float) -> str:
    """RFC 3339 with microseconds and a Z, as Google's JSON renders Timestamps."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ok(
    incoming: Incoming, body: dict[str, Any], extra: list[tuple[bytes, bytes]] | None = None
) -> Exchange:
    return json_exchange(_JSON, incoming.request_id, 200, body, extra)


def error(incoming: Incoming, code: int, message: str) -> Exchange:
    body = gemini_wire.error_body(code, message)
    return json_exchange(_JSON, incoming.request_id, code, body)


def _origin(incoming: Incoming) -> str:
    host = (incoming.header(b"host") or b"localhost").decode("latin-1")
    return f"http://{host}"


def file_resource(stored: StoredFile, origin: str, version: str) -> dict[str, Any]:
    name = f"files/{stored.id}"
    body: dict[str, Any] = {
        "name": name,
        "mimeType": stored.mime_type,
        "sizeBytes": str(len(stored.data)),
        "createTime": timestamp(stored.created_at),
        "updateTime": timestamp(stored.created_at),
        "expirationTime": timestamp(stored.created_at + FILE_TTL_S),
        "sha256Hash": base64.b64encode(hashlib.sha256(stored.data).hexdigest().encode()).decode(),
        "uri": f"{origin}/{version}/{name}",
        "state": "ACTIVE",
        "source": "GENERATED" if stored.generated else "UPLOADED",
    }
    if stored.filename:
        body["displayName"] = stored.filename
    if stored.generated:
        body["downloadUri"] = f"{origin}/download/{version}/{name}:download?alt=media"
    return body


def lookup(book: BatchBook, file_id: str) -> StoredFile:
    stored = book.files.get(file_id)
    if stored is None or stored.provider != "gemini":
        raise GeminiNotFoundError(f"File files/{file_id} not found.")
    return stored


def start_upload(incoming: Incoming, book: BatchBook, version: str) -> Exchange:
    protocol = (incoming.header(b"x-goog-upload-protocol") or b"").decode("latin-1")
    command = (incoming.header(b"x-goog-upload-command") or b"").decode("latin-1")
    if protocol != "resumable" or command != "start":
        raise BadRequestError(
            "Upload requests need X-Goog-Upload-Protocol: resumable and"
            " X-Goog-Upload-Command: start."
        )
    body = incoming.json() or {}
    meta = body.get("file") if isinstance(body, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    declared_type = incoming.header(b"x-goog-upload-header-content-type")
    # google-genai sends the File's fields in snake_case; proto JSON accepts both spellings.
    mime = meta.get("mimeType") or meta.get("mime_type")
    if mime is None and declared_type:
        mime = declared_type.decode("latin-1")
    if not isinstance(mime, str) or not mime:
        raise BadRequestError("* file.mime_type: a MIME type is required.")
    length = incoming.header(b"x-goog-upload-header-content-length")
    size = int(length) if length is not None and length.isdigit() else None
    display = meta.get("displayName") or meta.get("display_name")
    upload_id = new_id("", 16)
    with book.lock:
        book.uploads[upload_id] = PendingUpload(
            display if isinstance(display, str) else None, mime, size
        )
    query = f"upload_id={upload_id}&upload_protocol=resumable"
    url = f"{_origin(incoming)}/upload/{version}/files?{query}"
    headers = [(b"x-goog-upload-url", url.encode()), (b"x-goog-upload-status", b"active")]
    return ok(incoming, {}, headers)


def upload_chunk(incoming: Incoming, book: BatchBook, upload_id: str, version: str) -> Exchange:
    pending = book.uploads.get(upload_id)
    if not isinstance(pending, PendingUpload):
        raise GeminiNotFoundError(f"No upload session {upload_id}.")
    command = (incoming.header(b"x-goog-upload-command") or b"").decode("latin-1")
    offset = incoming.header(b"x-goog-upload-offset")
    if offset is not None and (not offset.isdigit() or int(offset) != len(pending.data)):
        raise BadRequestError(f"X-Goog-Upload-Offset must be {len(pending.data)}.")
    pending.data += incoming.raw_body
    steps = {step.strip() for step in command.split(",")}
    if "finalize" not in steps:
        return ok(incoming, {}, [(b"x-goog-upload-status", b"active")])
    with book.lock:
        book.uploads.pop(upload_id, None)
    stored = book.add_file(
        StoredFile(
            id=new_id("", 6),
            provider="gemini",
            filename=pending.display_name or "",
            purpose="upload",
            data=bytes(pending.data),
            created_at=time.time(),
            mime_type=pending.mime_type,
        )
    )
    body = {"file": file_resource(stored, _origin(incoming), version)}
    return ok(incoming, body, [(b"x-goog-upload-status", b"final")])


def add_generated(book: BatchBook, data: bytes, display_name: str) -> StoredFile:
    return book.add_file(
        StoredFile(
            id=new_id("", 6),
            provider="gemini",
            filename=display_name,
            purpose="batch_output",
            data=data,
            created_at=time.time(),
            generated=True,
        )
    )


def get(incoming: Incoming, book: BatchBook, file_id: str, version: str) -> Exchange:
    return ok(incoming, file_resource(lookup(book, file_id), _origin(incoming), version))


def delete(incoming: Incoming, book: BatchBook, file_id: str) -> Exchange:
    lookup(book, file_id)
    with book.lock:
        book.files.pop(file_id, None)
    return ok(incoming, {})


def listing(incoming: Incoming, book: BatchBook, version: str) -> Exchange:
    with book.lock:
        files = [stored for stored in book.files.values() if stored.provider == "gemini"]
    origin = _origin(incoming)
    return ok(incoming, {"files": [file_resource(stored, origin, version) for stored in files]})


def download(incoming: Incoming, book: BatchBook, file_id: str) -> Exchange:
    stored = lookup(book, file_id)
    headers = json_headers(b"application/octet-stream", incoming.request_id)
    return Exchange(status=200, headers=headers, body=stored.data)
