"""Files and batches (docs/api.md#files-and-batches): upload, create, wait with progress, and the
results read line by line from the output and error files."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from anygate.client._calls import Call, UploadSource, upload_of
from anygate.client._errors import APIConnectionError, UnexpectedResponseError, WaitTimeoutError
from anygate.client._models import Batch, BatchResult, FileObject
from anygate.client._paging import paginate
from anygate.client._protocol import Close, Emit, NextLine, Op, Opened, Sleep, request, send
from anygate.client._retry import RetryPolicy

Progress = Callable[[Batch], None]
_ID_PARAM = {"files": "file_id", "batches": "batch_id"}
MAX_FILES_PAGE = 10_000
"""The files list pages up to 10,000 (OpenAI's bound), the others up to 100."""


def _path(collection: str, object_id: str, suffix: str = "") -> str:
    """``/v1/files/<id>`` or ``/v1/batches/<id>``, the id escaped."""
    if not object_id:
        raise ValueError(f"{_ID_PARAM[collection]}: must not be empty")
    return f"/v1/{collection}/{quote(object_id, safe='')}{suffix}"


def upload_file(
    source: UploadSource, policy: RetryPolicy, *, purpose: str, filename: str | None
) -> Op[FileObject]:
    upload, release = upload_of(source, filename)
    try:
        call = Call("POST", "/v1/files", upload=upload, form={"purpose": purpose})
        return FileObject.from_api((yield from request(call, policy)))
    finally:
        release()


def file_content(file_id: str, policy: RetryPolicy) -> Op[bytes]:
    response: httpx.Response = yield from send(
        Call("GET", _path("files", file_id, "/content")), policy
    )
    return response.content


def create_batch(
    input_file_id: str,
    policy: RetryPolicy,
    *,
    endpoint: str,
    completion_window: str,
    metadata: Mapping[str, str] | None,
    webhook_url: str | None,
) -> Op[Batch]:
    payload: dict[str, Any] = {
        "input_file_id": input_file_id,
        "endpoint": endpoint,
        "completion_window": completion_window,
    }
    if metadata is not None:
        payload["metadata"] = dict(metadata)
    if webhook_url is not None:
        payload["webhook_url"] = webhook_url
    return Batch.from_api((yield from request(Call("POST", "/v1/batches", json=payload), policy)))


def submit_batch(
    source: UploadSource, policy: RetryPolicy, *, filename: str | None, **create: Any
) -> Op[Batch]:
    uploaded = yield from upload_file(source, policy, purpose="batch", filename=filename)
    return (yield from create_batch(uploaded.id, policy, **create))


def delete_file(file_id: str, policy: RetryPolicy) -> Op[bool]:
    answer = yield from request(Call("DELETE", _path("files", file_id)), policy)
    return bool(answer.get("deleted"))


def list_files(
    policy: RetryPolicy, *, purpose: str | None, page_size: int, limit: int | None
) -> Op[None]:
    """The tenant's files, newest first."""
    params = {"order": "desc", **({"purpose": purpose} if purpose else {})}
    yield from paginate(
        "/v1/files",
        policy,
        FileObject.from_api,
        params=params,
        page_size=page_size,
        limit=limit,
        maximum=MAX_FILES_PAGE,
    )


def list_batches(policy: RetryPolicy, *, page_size: int, limit: int | None) -> Op[None]:
    """The tenant's batches, newest first."""
    yield from paginate("/v1/batches", policy, Batch.from_api, page_size=page_size, limit=limit)


def get_batch(batch_id: str, policy: RetryPolicy) -> Op[Batch]:
    return Batch.from_api((yield from request(Call("GET", _path("batches", batch_id)), policy)))


def cancel_batch(batch_id: str, policy: RetryPolicy) -> Op[Batch]:
    call = Call("POST", _path("batches", batch_id, "/cancel"), idempotent_write=True)
    return Batch.from_api((yield from request(call, policy)))


def wait_batch(
    batch_id: str,
    policy: RetryPolicy,
    *,
    progress: Progress | None,
    poll_s: float,
    timeout: float | None,
) -> Op[Batch]:
    """Poll every ``poll_s`` until the batch ends; ``progress`` sees each state polled."""
    if poll_s <= 0:
        raise ValueError("poll_s: must be more than 0 seconds")
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        batch = yield from get_batch(batch_id, policy)
        if progress is not None:
            progress(batch)
        if batch.done:
            return batch
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise WaitTimeoutError(
                f"batch {batch.id} is still {batch.status} after {timeout:g} s", batch=batch
            )
        yield Sleep(poll_s if left is None else min(poll_s, left))


def batch_results(batch: Batch | str, policy: RetryPolicy) -> Op[None]:
    """Each line of the output file, then of the error file, as a ``BatchResult``."""
    if isinstance(batch, str):
        batch = yield from get_batch(batch, policy)
    for file_id in (batch.output_file_id, batch.error_file_id):
        if file_id:
            yield from _file_results(file_id, policy)


def _file_results(file_id: str, policy: RetryPolicy) -> Op[None]:
    call = Call("GET", _path("files", file_id, "/content"))
    opened: Opened = yield from send(call, policy, stream=True)
    number = 0
    try:
        while (line := (yield NextLine(opened))) is not None:
            number += 1
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError:
                raise UnexpectedResponseError(f"file {file_id}, line {number}: not JSON") from None
            if not isinstance(item, dict):
                raise UnexpectedResponseError(f"file {file_id}, line {number}: not an object")
            yield Emit(BatchResult.from_line(item))
    except httpx.TransportError as exc:
        raise APIConnectionError(f"file {file_id}: the download broke at line {number}") from exc
    yield Close(opened)
