"""The Batches pages (docs/console.md#batches): batches across tenants with their progress, one
batch's details (live over SSE until it ends), its cancel button, and its output and error
files to download.

A batch is found by id whatever its tenant; its cancel and its files then go through the
tenant's own calls, the API's: ``cancel_tenant_batch`` (``POST /v1/batches/{id}/cancel``) and
``file_response`` (``GET /v1/files/{id}/content``), here sent as an attachment.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from anygate.api.admin import audit
from anygate.api.batches import cancel_tenant_batch
from anygate.api.console import batch_listing
from anygate.api.console.guard import Console, console_view, unknown_page
from anygate.api.console.job_timeline import when
from anygate.api.console.jobs import tenant_filter
from anygate.api.console.live import live_fragments
from anygate.api.console.render import PREFIX, fragment, render
from anygate.api.files import file_response, file_store
from anygate.broker.batch_store import BATCH_TIMES, Batch, batch_not_found
from anygate.broker.errors import InvalidRequestError, NotFoundError

CANCELLABLE = frozenset({"validating", "in_progress"})
"""What ``BatchStore.request_cancel`` moves to ``cancelling``; the button shows for these."""
FILES = {"output": "output_file_id", "error": "error_file_id"}


def when_s(seconds: int | None) -> str:
    return when(seconds * 1000) if seconds else "—"


def view(batch: Batch) -> dict[str, Any]:
    """What a page shows of a batch: the API's object plus its tenant and progress."""
    body = batch.to_api()
    counts = body["request_counts"]
    return {
        **body,
        "tenant": batch.tenant,
        "done": counts["completed"] + counts["failed"],
        "cancellable": batch.status in CANCELLABLE,
    }


async def _load(console: Console, batch_id: str) -> Batch:
    batch = await batch_listing.store_of(console.gw).load(batch_id)
    if batch is None:
        raise batch_not_found(batch_id)
    return batch


async def _batches(request: Request, console: Console) -> Response:
    tenant = request.query_params.get("tenant", "").strip()
    after = request.query_params.get("after") or None
    context: dict[str, Any] = {"tenant": tenant, "error": None, "status_code": 200}
    try:
        tenant_filter(tenant)
    except InvalidRequestError as exc:
        context["error"] = exc
        context["status_code"] = 400
    context["filtered"] = bool(tenant) and context["error"] is None
    if context["filtered"]:
        batches, next_after = await batch_listing.tenant_page(console.gw, tenant, after)
        context.update(listed=[view(b) for b in batches], next_after=next_after)
    else:
        found = await batch_listing.overview(console.gw)
        context.update(
            active=[view(b) for b in found.active],
            active_truncated=found.active_truncated,
            recent=[(t, [view(b) for b in bs]) for t, bs in found.recent],
            tenants_truncated=found.tenants_truncated,
        )
    return render(
        request,
        "batches.html",
        session=console.session,
        section="batches",
        when_s=when_s,
        **context,
    )


def _detail_context(batch: Batch) -> dict[str, Any]:
    return {
        "batch": view(batch),
        "times": [(name, batch.to_api()[name]) for name in BATCH_TIMES],
        "when_s": when_s,
    }


async def _batch(request: Request, console: Console) -> Response:
    batch = await _load(console, request.path_params["batch_id"])
    return render(
        request,
        "batch.html",
        session=console.session,
        section="batches",
        **_detail_context(batch),
    )


async def _batch_stream(request: Request, console: Console) -> Response:
    batch = await _load(console, request.path_params["batch_id"])
    state = {"ended": batch.ended}

    async def fragments() -> list[tuple[str, str]]:
        fresh = await batch_listing.store_of(console.gw).load(batch.id)
        if fresh is None:  # expired meanwhile: nothing more will change
            state["ended"] = True
            return []
        state["ended"] = fresh.ended
        html = fragment("batch_live.html", csrf=console.session.csrf, **_detail_context(fresh))
        return [("batch-live", html)]

    return live_fragments(request, console, fragments, every_s=1.0, finished=lambda: state["ended"])


async def _cancel(request: Request, console: Console) -> Response:
    """The API's cancel (``cancel_tenant_batch``) as the batch's tenant, with the audit line."""
    batch = await _load(console, request.path_params["batch_id"])
    await cancel_tenant_batch(console.gw, batch.tenant, batch.id)
    audit(console.actor, "batch.cancel", batch.id, via="console", tenant=batch.tenant)
    return RedirectResponse(f"{PREFIX}/batches/{batch.id}", status_code=303)


async def _file(request: Request, console: Console) -> Response:
    """The batch's output or error file as an attachment, streamed as the Files API does."""
    which = request.path_params["which"]
    if which not in FILES:
        raise unknown_page(request)
    batch = await _load(console, request.path_params["batch_id"])
    file_id = batch.h.get(FILES[which]) or ""
    store = file_store(console.gw)
    record = await store.get(batch.tenant, file_id) if file_id else None
    if record is None:
        raise NotFoundError(
            f"Batch '{batch.id}' has no {which} file (yet, or any longer).",
            param="batch_id",
            code="file_not_found",
        )
    return await file_response(store, record, attachment=f"{batch.id}_{which}.jsonl")


ROUTES = [
    Route("/batches", console_view(_batches), methods=["GET"]),
    Route("/batches/{batch_id}", console_view(_batch), methods=["GET"]),
    Route("/batches/{batch_id}/stream", console_view(_batch_stream), methods=["GET"]),
    Route("/batches/{batch_id}/cancel", console_view(_cancel), methods=["POST"]),
    Route("/batches/{batch_id}/{which:str}", console_view(_file), methods=["GET"]),
]
