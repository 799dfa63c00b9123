"""Routes and dispatch for batch mode: OpenAI's Files and Batch APIs, Gemini's batches and files.

Kept apart from `routing` and the live handlers because these endpoints are stateful: they read
and write the mock's `BatchBook` and meter batch lines into the request log as the lines run.
Errors come back in each provider's own shape, like every other mock endpoint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from anygate.ops.mock_provider import (
    gemini_batches,
    gemini_files,
    gemini_http,
    openai_batches,
    openai_files,
    openai_http,
)
from anygate.ops.mock_provider.batch_store import BatchBook, Job, advance
from anygate.ops.mock_provider.common import BadRequestError
from anygate.ops.mock_provider.exchange import Exchange, Incoming, InvalidJsonError
from anygate.ops.mock_provider.request_log import RequestLog
from anygate.ops.mock_provider.routing import Provider, Route
from anygate.ops.mock_provider.settings import MockSettings

_OPENAI_COLLECTIONS = {"files", "batches"}
_GEMINI_VERSIONS = ("v1beta", "v1")
_GEMINI_BATCH_ACTIONS = {
    "batchGenerateContent": "batch_generate",
    "asyncBatchEmbedContent": "batch_embed_async",
}


@dataclass(frozen=True, slots=True)
class BatchRoute:
    """A batch endpoint: `resource` is the file or batch id in the path, if any."""

    provider: Provider
    endpoint: str
    model: str | None = None
    resource: str | None = None
    version: str = "v1beta"

    @property
    def route(self) -> Route:
        """The plain route the request log and fault rules understand."""
        return Route(self.provider, self.endpoint, self.model)


@dataclass(frozen=True, slots=True)
class BatchDesk:
    """What batch handlers need beyond the request: the store and the request log."""

    book: BatchBook
    log: RequestLog


def resolve(method: str, path: str, *, gemini_credentials: bool) -> BatchRoute | None:
    """The batch endpoint for a request, or None when it is not a batch-mode path.

    Every live request passes through here first, so the common case leaves at one substring
    test: no batch-mode path lacks both "atch" and "files".
    """
    if "atch" not in path and "files" not in path:
        return None
    parts = path.strip("/").split("/")
    if parts[0] in ("upload", "download") and len(parts) >= 3 and parts[2] == "files":
        return _gemini_transfer(method, parts)
    if parts[0] not in _GEMINI_VERSIONS or len(parts) < 2:
        return None
    version = parts[0]
    if version == "v1" and parts[1] in _OPENAI_COLLECTIONS and not gemini_credentials:
        return _openai(method, parts[1:])
    if parts[1] == "models" and len(parts) == 3:
        model, _, action = parts[2].partition(":")
        endpoint = _GEMINI_BATCH_ACTIONS.get(action)
        if endpoint is not None:
            return BatchRoute("gemini", _only(method, "POST", endpoint), model, None, version)
    if parts[1] == "batches":
        return _gemini_resources(method, parts[2:], version, "gbatches", ("cancel", "POST"))
    if parts[1] == "files":
        return _gemini_resources(method, parts[2:], version, "gfiles", ("download", "GET"))
    return None


def _only(method: str, wanted: str, endpoint: str) -> str:
    return endpoint if method == wanted else "method_not_allowed"


def _openai(method: str, parts: list[str]) -> BatchRoute:
    kind = parts[0]
    if len(parts) == 1:
        endpoint = {"POST": f"{kind}_create", "GET": f"{kind}_list"}.get(method)
        return BatchRoute("openai", endpoint or "method_not_allowed")
    resource = parts[1]
    if len(parts) == 2:
        allowed = {"GET": f"{kind}_get", "DELETE": "files_delete" if kind == "files" else None}
        return BatchRoute("openai", allowed.get(method) or "method_not_allowed", None, resource)
    if len(parts) == 3 and kind == "files" and parts[2] == "content":
        return BatchRoute("openai", _only(method, "GET", "files_content"), None, resource)
    if len(parts) == 3 and kind == "batches" and parts[2] == "cancel":
        return BatchRoute("openai", _only(method, "POST", "batches_cancel"), None, resource)
    return BatchRoute("openai", "not_found")


def _gemini_resources(
    method: str, rest: list[str], version: str, family: str, action: tuple[str, str]
) -> BatchRoute:
    """``{family}`` (``gbatches``, ``gfiles``): list, get, delete, and one custom method
    (``action``: its name and HTTP method, ``:cancel`` by POST, ``:download`` by GET)."""
    if not rest:
        return BatchRoute("gemini", _only(method, "GET", f"{family}_list"), version=version)
    if len(rest) != 1:
        return BatchRoute("gemini", "not_found", version=version)
    resource, _, verb = rest[0].partition(":")
    name, verb_method = action
    if verb == name:
        endpoint = _only(method, verb_method, f"{family}_{name}")
        return BatchRoute("gemini", endpoint, None, resource, version)
    if verb:
        return BatchRoute("gemini", "not_found", version=version)
    plain = {"GET": f"{family}_get", "DELETE": f"{family}_delete"}.get(method)
    return BatchRoute("gemini", plain or "method_not_allowed", None, resource, version)


def _gemini_transfer(method: str, parts: list[str]) -> BatchRoute:
    version = parts[1]
    if parts[0] == "upload" and len(parts) == 3:
        return BatchRoute("gemini", _only(method, "POST", "gfiles_upload"), version=version)
    if parts[0] == "download" and len(parts) == 4 and parts[3].endswith(":download"):
        resource = parts[3].partition(":")[0]
        return BatchRoute(
            "gemini", _only(method, "GET", "gfiles_download"), None, resource, version
        )
    return BatchRoute("gemini", "not_found", version=version)


def handle(
    route: BatchRoute, incoming: Incoming, settings: MockSettings, desk: BatchDesk
) -> Exchange:
    """Plan the answer to one batch-mode request; never raises for client mistakes."""
    if route.provider == "openai":
        return _openai_answer(route, incoming, settings, desk)
    return _gemini_answer(route, incoming, settings, desk)


def _openai_answer(
    route: BatchRoute, incoming: Incoming, settings: MockSettings, desk: BatchDesk
) -> Exchange:
    if route.endpoint in ("not_found", "method_not_allowed"):
        status = 404 if route.endpoint == "not_found" else 405
        return openai_files.error(
            incoming, status, f"Invalid URL ({incoming.method} {incoming.path})"
        )
    failure = openai_http.auth_failure(incoming, settings)
    if failure is not None:
        return failure
    try:
        return _openai_dispatch(route, incoming, settings, desk)
    except InvalidJsonError:
        return openai_files.error(
            incoming, 400, "We could not parse the JSON body of your request."
        )
    except BadRequestError as exc:
        return openai_files.error(incoming, 400, exc.message, exc.param)
    except openai_files.NotFoundError as exc:
        return openai_files.error(incoming, 404, str(exc), "id")


def _openai_dispatch(
    route: BatchRoute, incoming: Incoming, settings: MockSettings, desk: BatchDesk
) -> Exchange:
    book, endpoint, resource = desk.book, route.endpoint, route.resource or ""
    with book.lock:
        if endpoint == "files_create":
            return openai_files.create(incoming, book)
        if endpoint == "files_list":
            return openai_files.listing(incoming, book)
        if endpoint.startswith("files_"):
            stored = openai_files.lookup(book, resource)
            if endpoint == "files_content":
                return openai_files.content(incoming, stored)
            if endpoint == "files_delete":
                return openai_files.delete(incoming, book, stored)
            return openai_files.ok(incoming, openai_files.file_object(stored))
        if endpoint == "batches_create":
            return openai_batches.create(incoming, book, settings)
        now = time.time()
        if endpoint == "batches_list":
            jobs = book.jobs_of("openai")
            rendered = [_openai_batch(job, settings, desk, now) for job in jobs]
            return openai_batches.listing(incoming, rendered)
        job = _job(book, "openai", resource)
        if job is None:
            raise openai_files.NotFoundError(f"No batch found with id '{resource}'.")
        if endpoint == "batches_cancel":
            _cancel(job, settings, desk, now)
        return openai_files.ok(incoming, _openai_batch(job, settings, desk, now))


def _job(book: BatchBook, provider: str, job_id: str) -> Job | None:
    job = book.jobs.get(job_id)
    return job if job is not None and job.provider == provider else None


def _cancel(job: Job, settings: MockSettings, desk: BatchDesk, now: float) -> None:
    """A cancel stops a job that has not ended; lines already run are kept."""
    state = advance(job, now, settings, desk.log)
    if not state.terminal and job.cancelled_at is None:
        job.cancelled_at = now


def _openai_batch(job: Job, settings: MockSettings, desk: BatchDesk, now: float) -> dict[str, Any]:
    state = advance(job, now, settings, desk.log)
    openai_batches.finish(job, desk.book, state)
    return openai_batches.batch_object(job, state)


def _gemini_op(job: Job, settings: MockSettings, desk: BatchDesk, now: float) -> dict[str, Any]:
    state = advance(job, now, settings, desk.log)
    gemini_batches.finish(job, desk.book, state)
    return gemini_batches.operation(job, state, now)


def _gemini_answer(
    route: BatchRoute, incoming: Incoming, settings: MockSettings, desk: BatchDesk
) -> Exchange:
    if route.endpoint in ("not_found", "method_not_allowed"):
        code = 404 if route.endpoint == "not_found" else 405
        return gemini_files.error(
            incoming, code, f"Method not found: {incoming.method} {incoming.path}"
        )
    # The resumable session URL is itself the credential: google-genai sends no key with it.
    session = route.endpoint == "gfiles_upload" and incoming.query("upload_id") is not None
    failure = None if session else gemini_http.auth_failure(incoming, settings)
    if failure is not None:
        return failure
    try:
        return _gemini_dispatch(route, incoming, settings, desk)
    except InvalidJsonError:
        return gemini_files.error(incoming, 400, "Invalid JSON payload received.")
    except BadRequestError as exc:
        return gemini_files.error(incoming, 400, exc.message)
    except gemini_files.GeminiNotFoundError as exc:
        return gemini_files.error(incoming, 404, str(exc))


def _gemini_dispatch(
    route: BatchRoute, incoming: Incoming, settings: MockSettings, desk: BatchDesk
) -> Exchange:
    book, endpoint, resource, version = (
        desk.book,
        route.endpoint,
        route.resource or "",
        route.version,
    )
    with book.lock:
        if endpoint == "gfiles_upload":
            upload_id = incoming.query("upload_id")
            if upload_id is None:
                return gemini_files.start_upload(incoming, book, version)
            return gemini_files.upload_chunk(incoming, book, upload_id, version)
        if endpoint == "gfiles_list":
            return gemini_files.listing(incoming, book, version)
        if endpoint == "gfiles_get":
            return gemini_files.get(incoming, book, resource, version)
        if endpoint == "gfiles_delete":
            return gemini_files.delete(incoming, book, resource)
        if endpoint == "gfiles_download":
            return gemini_files.download(incoming, book, resource)
        if endpoint in ("batch_generate", "batch_embed_async"):
            embed = endpoint == "batch_embed_async"
            model = route.model or ""
            return gemini_batches.create(incoming, book, settings, model, version, embed=embed)
        now = time.time()
        if endpoint == "gbatches_list":
            return gemini_files.ok(incoming, _gemini_page(incoming, settings, desk, now))
        job = _job(book, "gemini", resource)
        if job is None:
            raise gemini_files.GeminiNotFoundError(f"Batch batches/{resource} not found.")
        if endpoint == "gbatches_cancel":
            _cancel(job, settings, desk, now)
            return gemini_files.ok(incoming, {})
        if endpoint == "gbatches_delete":
            book.jobs.pop(job.id, None)
            return gemini_files.ok(incoming, {})
        return gemini_files.ok(incoming, _gemini_op(job, settings, desk, now))


def _gemini_page(
    incoming: Incoming, settings: MockSettings, desk: BatchDesk, now: float
) -> dict[str, Any]:
    """One page of `batches.list`: `operations` and, when more remain, `nextPageToken`."""
    size_text, token = incoming.query("pageSize"), incoming.query("pageToken") or "0"
    size = int(size_text) if size_text and size_text.isdigit() and int(size_text) > 0 else 50
    if not token.isdigit():
        raise BadRequestError("* page_token: invalid")
    start = int(token)
    jobs = desk.book.jobs_of("gemini")
    page: dict[str, Any] = {
        "operations": [_gemini_op(job, settings, desk, now) for job in jobs[start : start + size]]
    }
    if start + size < len(jobs):
        page["nextPageToken"] = str(start + size)
    return page
