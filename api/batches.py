"""OpenAI's Batch API (docs/api.md#files-and-batches): create, retrieve, list, cancel. The control
plane runs them.

Creating a batch only checks and records it: the input file is the tenant's and meant for
batches, the endpoint and window are ones we serve. Expansion into jobs, cancellation and
finalisation happen in ``anygate control`` (``workers/batch_driver.py``), so this stays a thin,
fast handler even for a 50,000-line file.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from anygate.api.files import file_store
from anygate.api.gateway import Gateway, gateway_of
from anygate.api.paging import list_page, page_limit
from anygate.api.request_body import read_body
from anygate.api.responses import JSONResponse
from anygate.broker.batch_store import Batch, BatchStore
from anygate.broker.errors import InvalidRequestError, NotFoundError
from anygate.config import AnygateConfig
from anygate.core.body import parse_json_object, validate

MetadataKey = Annotated[str, Field(min_length=1, max_length=64)]
MetadataValue = Annotated[StrictStr, Field(max_length=512)]


class CreateBatch(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    input_file_id: Annotated[StrictStr, Field(min_length=1, max_length=128)]
    endpoint: Literal["/v1/chat/completions", "/v1/embeddings"]
    completion_window: Literal["24h"]
    metadata: Annotated[dict[MetadataKey, MetadataValue], Field(max_length=16)] | None = None
    webhook_url: Annotated[StrictStr, Field(pattern=r"^https?://", max_length=2048)] | None = None
    """Ours (send it with the SDK's ``extra_body``): POSTed, HMAC-signed, when the batch ends."""


def require_webhook_secret(config: AnygateConfig, webhook_url: str | None) -> None:
    """A webhook is only ever sent signed: refuse one the gateway could not sign."""
    if webhook_url and config.security.webhook_secret is None:
        raise InvalidRequestError(
            "webhook_url: webhooks are signed with security.webhook_secret, which this gateway "
            "has not configured",
            param="webhook_url",
        )


def _file_not_found(file_id: str) -> NotFoundError:
    return NotFoundError(
        f"No such File object: {file_id}", param="input_file_id", code="file_not_found"
    )


async def create_batch(request: Request) -> Response:
    gw = gateway_of(request)
    tenant = await gw.auth.tenant(request, "batches")
    server = gw.config.server
    data = parse_json_object(await read_body(request, server.max_body_bytes), server.max_json_depth)
    spec = validate(CreateBatch, data)
    require_webhook_secret(gw.config, spec.webhook_url)
    files = file_store(gw)
    found = await files.get(tenant.id, spec.input_file_id)
    if found is None:
        raise _file_not_found(spec.input_file_id)
    if found.purpose != "batch":
        raise InvalidRequestError(
            f"input_file_id: the file's purpose is {found.purpose!r}, not 'batch'",
            param="input_file_id",
        )
    batch = await BatchStore(gw.redis, gw.broker.keys).create(
        tenant.id,
        input_file_id=spec.input_file_id,
        endpoint=spec.endpoint,
        completion_window=spec.completion_window,
        window_s=gw.config.batches.day_s,  # the only window OpenAI offers: "24h"
        total=found.lines,
        metadata=spec.metadata,
        webhook_url=spec.webhook_url,
    )
    return JSONResponse(batch.to_api())


async def get_batch(request: Request) -> Response:
    gw = gateway_of(request)
    tenant = await gw.auth.tenant(request, "batches")
    batch = await BatchStore(gw.redis, gw.broker.keys).get(
        tenant.id, request.path_params["batch_id"]
    )
    return JSONResponse(batch.to_api())


async def cancel_tenant_batch(gw: Gateway, tenant: str, batch_id: str) -> Batch:
    """Ask for the tenant's batch to be cancelled (the control plane does it) and answer it
    as it is now. ``POST /v1/batches/{id}/cancel`` and the console's cancel button both come
    here, so they behave the same; 404 for another tenant's batch."""
    return await BatchStore(gw.redis, gw.broker.keys).request_cancel(tenant, batch_id)


async def cancel_batch(request: Request) -> Response:
    gw = gateway_of(request)
    tenant = await gw.auth.tenant(request, "batches")
    batch = await cancel_tenant_batch(gw, tenant.id, request.path_params["batch_id"])
    return JSONResponse(batch.to_api())


async def list_batches(request: Request) -> Response:
    gw = gateway_of(request)
    tenant = await gw.auth.tenant(request, "batches")
    after = request.query_params.get("after") or None
    batches, has_more = await BatchStore(gw.redis, gw.broker.keys).page(
        tenant.id, after=after, limit=page_limit(request)
    )
    data = [b.to_api() for b in batches]
    return list_page(data, has_more)


ROUTES = [
    Route("/v1/batches", create_batch, methods=["POST"]),
    Route("/v1/batches", list_batches, methods=["GET"]),
    Route("/v1/batches/{batch_id}", get_batch, methods=["GET"]),
    Route("/v1/batches/{batch_id}/cancel", cancel_batch, methods=["POST"]),
]
