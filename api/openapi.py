"""``GET /openapi.json``: an OpenAPI 3.1 document of every route this server answers
(docs/api.md#ops-endpoints).

Built from the declarative rows of ``openapi_native``, ``openapi_admin`` and ``openapi_compat``
with the components of ``openapi_components`` and the schemas of ``openapi_schemas`` (request
models, native answers) and ``openapi_admin_schemas``; a unit test checks that
its operations are exactly the app's routes (tests/unit/test_openapi.py). Like ``/healthz`` it
needs no key: it says nothing a caller could not learn from docs/api.md. The document depends
only on the code and on whether ``/metrics`` is routed here, so it is rendered once per process
and served with an ``ETag``.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib.metadata import PackageNotFoundError, version

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from anygate.api.metrics_endpoint import routes as metrics_routes
from anygate.api.openapi_admin import admin_ops
from anygate.api.openapi_compat import compat_ops
from anygate.api.openapi_components import HEADERS, PARAMETERS, SECURITY_SCHEMES, responses
from anygate.api.openapi_native import native_ops
from anygate.api.openapi_schemas import all_schemas
from anygate.api.openapi_table import JSON, Op, paths
from anygate.api.openapi_webhooks import webhooks
from anygate.config import AnygateConfig

CACHE_CONTROL = "public, max-age=300"

DESCRIPTION = (
    "anygate: a self-hosted LLM gateway built as a queue-based job broker on Redis streams. "
    "Every endpoint, header, event and error code is described in docs/api.md. The "
    "OpenAI- and Gemini-compatible calls are described briefly here; their full request and "
    "answer shapes are the upstream APIs' (each operation's externalDocs). With tracing on, a "
    "W3C `traceparent`/`tracestate` makes the gateway's spans part of the caller's trace."
)

TAGS = [
    {"name": "jobs", "description": "The native job API: submit, poll, events, cancel, list."},
    {"name": "files", "description": "OpenAI's Files API, for batch input and output."},
    {"name": "batches", "description": "OpenAI's Batch API."},
    {"name": "usage", "description": "The calling tenant's usage."},
    {"name": "openai", "description": "The OpenAI-compatible surface."},
    {"name": "gemini", "description": "The Gemini-compatible surface."},
    {"name": "admin", "description": "Operators: tenants, keys, usage, queues, dead letters."},
    {"name": "ops", "description": "Probes, metrics and this document."},
    {"name": "webhooks", "description": "What the gateway POSTs to your webhook URLs."},
]


def _version() -> str:
    try:
        return version("anygate")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0"


def variant(config: AnygateConfig) -> tuple[bool, str]:
    """What of the config the document depends on: whether ``/metrics`` is routed here
    (``api/metrics_endpoint.py``), and who may read it."""
    return bool(metrics_routes(config)), config.metrics.api_access


def operations(*, metrics: bool) -> list[Op]:
    """Every operation a server routes (with ``/metrics`` or without)."""
    return [*native_ops(metrics=metrics), *compat_ops(), *admin_ops()]


def build_document(*, metrics: bool, access: str) -> JSON:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "anygate",
            "version": _version(),
            "description": DESCRIPTION,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": TAGS,
        "paths": paths(operations(metrics=metrics), access),
        "webhooks": webhooks(),
        "components": {
            "schemas": all_schemas(),
            "parameters": PARAMETERS,
            "headers": HEADERS,
            "responses": responses(),
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


def document(config: AnygateConfig) -> JSON:
    """The document a server started with ``config`` serves."""
    metrics, access = variant(config)
    return build_document(metrics=metrics, access=access)


@cache
def _rendered(metrics: bool, access: str) -> tuple[bytes, str]:
    """The document's bytes and their ETag, rendered once per process and variant."""
    body = orjson.dumps(build_document(metrics=metrics, access=access))
    return body, f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def routes(config: AnygateConfig) -> list[Route]:
    metrics, access = variant(config)

    async def openapi_json(request: Request) -> Response:
        body, etag = _rendered(metrics, access)
        headers = {"cache-control": CACHE_CONTROL, "etag": etag}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    return [Route("/openapi.json", openapi_json, methods=["GET"])]
