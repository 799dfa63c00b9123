"""The schemas of ``/openapi.json``: request bodies from the very pydantic models the handlers
validate with, answers as the ``to_api()`` methods write them.

A request model's JSON Schema comes from ``model_json_schema()``, its ``$defs`` hoisted into
``components/schemas`` (pydantic writes JSON Schema 2020-12, the dialect of OpenAPI 3.1), so
the document cannot drift from what the server checks. Answers have no model (they are dicts
built by ``JobRecord.to_api`` and its siblings): their schemas are written here and checked
against real answers by the live test (tests/integration/test_openapi_live.py).
"""

from __future__ import annotations

from pydantic import BaseModel

from anygate.api.admin import NewKey, NewTenant
from anygate.api.admin_ops import RequeueDead
from anygate.api.batches import CreateBatch
from anygate.api.openapi_admin_schemas import ADMIN_SCHEMAS
from anygate.api.openapi_jsonschema import (
    BOOL,
    INT,
    NUM,
    STR,
    STR_MAP,
    const,
    deleted,
    list_of,
    nullable,
    obj,
)
from anygate.api.openapi_table import JSON, schema_ref
from anygate.api.openapi_webhooks import WEBHOOK_SCHEMAS
from anygate.broker import COUNT_TOKENS, JobStatus
from anygate.broker.batch_store import BATCH_TIMES
from anygate.config import ModelKind, Priority, ProviderKind, TenantSettings
from anygate.core.schemas import ChatCompletionBody, EmbeddingsBody, SubmitJob

REF_TEMPLATE = "#/components/schemas/{model}"

REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    SubmitJob,
    ChatCompletionBody,
    EmbeddingsBody,
    CreateBatch,
    NewTenant,
    TenantSettings,
    NewKey,
    RequeueDead,
)
"""Every model a handler validates a JSON body with (``core.body.validate``)."""

ENDPOINTS = ["/v1/chat/completions", "/v1/embeddings"]


def model_schemas() -> dict[str, JSON]:
    """Each request model's schema by its name, its ``$defs`` hoisted beside it; one name
    defined twice differently is a bug here, not something to paper over."""
    found: dict[str, JSON] = {}

    def put(name: str, schema: JSON) -> None:
        if name in found and found[name] != schema:
            raise ValueError(f"two different schemas named {name}")
        found[name] = schema

    for model in REQUEST_MODELS:
        schema = model.model_json_schema(ref_template=REF_TEMPLATE)
        for name, sub in schema.pop("$defs", {}).items():
            put(name, sub)
        put(model.__name__, schema)
    return found


SUBMIT_JOB_REQUEST: JSON = {
    "description": "A job: `endpoint` and the `body` exactly as for that endpoint, checked by "
    "the same schema as the compatible call (errors name `body.<field>`).",
    "allOf": [
        schema_ref("SubmitJob"),
        {
            "if": {"properties": {"endpoint": {"const": ENDPOINTS[0]}}},
            "then": {"properties": {"body": schema_ref("ChatCompletionBody")}},
        },
        {
            "if": {"properties": {"endpoint": {"const": ENDPOINTS[1]}}},
            "then": {"properties": {"body": schema_ref("EmbeddingsBody")}},
        },
    ],
}

ERROR: JSON = obj(
    {
        "error": obj(
            {
                "message": STR,
                "type": STR,
                "param": nullable(STR),
                "code": nullable(STR),
            }
        )
    },
    description="OpenAI's error shape; `code` is listed in docs/api.md#error-codes.",
)

GOOGLE_ERROR: JSON = obj(
    {"error": obj({"code": INT, "message": STR, "status": STR})},
    description="Google's error shape (the Gemini-compatible surface).",
)

JOB_ERROR: JSON = {
    "type": "object",
    "description": "A failed job's error: OpenAI's error fields, with `upstream_status` when "
    "the provider answered and `retry_after` for a pause.",
    "properties": {
        "message": STR,
        "type": STR,
        "code": nullable(STR),
        "upstream_status": nullable(INT),
        "retry_after": INT,
    },
    "required": ["message", "type"],
}

JOB: JSON = obj(
    {
        "id": STR,
        "object": const("job"),
        "status": {"type": "string", "enum": [s.value for s in JobStatus]},
        "priority": {"type": "string", "enum": [p.value for p in Priority]},
        "endpoint": {
            "type": "string",
            "enum": [*ENDPOINTS, COUNT_TOKENS],
            "description": f"`{COUNT_TOKENS}`: a Gemini `:countTokens` call's job (not one "
            "`POST /v1/jobs` accepts).",
        },
        "model": STR,
        "provider": STR,
        "created_at": NUM,
        "started_at": nullable(NUM),
        "finished_at": nullable(NUM),
        "deadline": nullable(NUM),
        "attempts": INT,
        "result": {"description": "The OpenAI-format response once succeeded, else null."},
        "error": nullable(schema_ref("JobError")),
        "usage": nullable({"type": "object"}),
        "cost_usd": nullable(NUM),
        "metadata": STR_MAP,
        "attempt_history": {"type": "array", "items": {"type": "object"}},
        "execution": {
            "type": "string",
            "enum": ["live", "provider_batch"],
            "description": "The path to the provider: a live call, or a line of the "
            "provider's own Batch API at its discounted price.",
        },
        "queue_position": INT,
        "estimated_start_at": nullable(NUM),
    },
    optional=("queue_position", "estimated_start_at"),
    description="`queue_position` and `estimated_start_at` only in the answer that created it.",
)

DEAD_LETTER: JSON = {
    "allOf": [
        schema_ref("Job"),
        obj({"tenant": nullable(STR), "requeueable": BOOL}),
    ]
}

BATCH_STATUSES = [
    "validating",
    "in_progress",
    "finalizing",
    "completed",
    "failed",
    "expired",
    "cancelling",
    "cancelled",
]

BATCH_ERROR = obj({"code": STR, "message": STR, "param": nullable(STR), "line": nullable(INT)})

BATCH: JSON = obj(
    {
        "id": STR,
        "object": const("batch"),
        "endpoint": {"type": "string", "enum": ENDPOINTS},
        "errors": nullable(
            obj({"object": const("list"), "data": {"type": "array", "items": BATCH_ERROR}})
        ),
        "input_file_id": STR,
        "completion_window": STR,
        "status": {"type": "string", "enum": BATCH_STATUSES},
        "output_file_id": nullable(STR),
        "error_file_id": nullable(STR),
        "request_counts": obj({"total": INT, "completed": INT, "failed": INT}),
        "metadata": nullable(STR_MAP),
        **{name: nullable(INT) for name in BATCH_TIMES},
        "usage": {"type": "object"},
    },
    optional=("usage",),
    description="OpenAI's Batch object.",
)

FILE: JSON = obj(
    {
        "id": STR,
        "object": const("file"),
        "bytes": INT,
        "created_at": INT,
        "filename": STR,
        "purpose": {"type": "string", "enum": ["batch", "batch_output"]},
        "status": STR,
        "expires_at": INT,
        "status_details": {"type": "null"},
    },
    description="OpenAI's File object.",
)


USAGE_ROW: JSON = obj(
    {
        "object": const("usage"),
        "tenant": STR,
        "model": STR,
        "date": {"type": "string", "format": "date"},
        "requests": INT,
        "prompt_tokens": INT,
        "completion_tokens": INT,
        "total_tokens": INT,
        "cost_usd": NUM,
    }
)

USAGE_TOTALS = obj(
    {
        "requests": INT,
        "prompt_tokens": INT,
        "completion_tokens": INT,
        "total_tokens": INT,
        "cost_usd": NUM,
    }
)

MODEL_CAPABILITIES = obj(
    {
        "kind": {"type": "string", "enum": [k.value for k in ModelKind]},
        "streaming": BOOL,
        "providers": {
            "type": "array",
            "items": {"type": "string", "enum": [k.value for k in ProviderKind]},
        },
        "fallbacks": {"type": "array", "items": STR},
        "count_tokens": BOOL,
        "cache": BOOL,
        "batch_api": BOOL,
    },
    description="What the alias can do through anygate (docs/api.md#model-capabilities).",
)

OPENAI_MODEL = obj(
    {
        "id": STR,
        "object": const("model"),
        "created": INT,
        "owned_by": STR,
        "anygate": MODEL_CAPABILITIES,
    }
)

GEMINI_MODEL = obj(
    {
        "name": STR,
        "baseModelId": STR,
        "version": STR,
        "displayName": STR,
        "description": STR,
        "supportedGenerationMethods": {"type": "array", "items": STR},
    }
)

UPSTREAM: JSON = {
    "type": "object",
    "description": "The upstream API's own object, as its reference (externalDocs) defines it.",
}

RESPONSE_SCHEMAS: dict[str, JSON] = {
    "Error": ERROR,
    "GoogleError": GOOGLE_ERROR,
    "JobError": JOB_ERROR,
    "Job": JOB,
    "JobList": list_of(schema_ref("Job")),
    "DeadLetter": DEAD_LETTER,
    "DeadLetterList": list_of(schema_ref("DeadLetter")),
    "Batch": BATCH,
    "BatchList": list_of(schema_ref("Batch")),
    "File": FILE,
    "FileList": list_of(schema_ref("File")),
    "FileDeleted": deleted("file"),
    "UsageRow": USAGE_ROW,
    "TenantUsage": list_of(
        schema_ref("UsageRow"),
        start={"type": "string", "format": "date"},
        end={"type": "string", "format": "date"},
        totals=USAGE_TOTALS,
    ),
    "AdminUsage": list_of(
        schema_ref("UsageRow"),
        **{"from": {"type": "string", "format": "date"}},
        to={"type": "string", "format": "date"},
    ),
    **ADMIN_SCHEMAS,
    **WEBHOOK_SCHEMAS,
    "Model": OPENAI_MODEL,
    "ModelList": obj({"object": const("list"), "data": {"type": "array", "items": OPENAI_MODEL}}),
    "GeminiModel": GEMINI_MODEL,
    "GeminiModelList": obj({"models": {"type": "array", "items": schema_ref("GeminiModel")}}),
    "Upstream": UPSTREAM,
    "SubmitJobRequest": SUBMIT_JOB_REQUEST,
    "Health": obj({"status": const("ok")}),
    "Ready": {
        "type": "object",
        "description": "`status` is `ready`, or on a 503 `starting` or `unavailable`, with why.",
        "properties": {
            "status": {"type": "string", "enum": ["ready", "starting", "unavailable"]},
            "redis": {"type": "string", "enum": ["ok", "waiting", "unreachable"]},
            "config": STR,
            "durability": STR,
            "config_hash": STR,
            "config_generation": INT,
            "problem": STR,
        },
        "required": ["status", "redis"],
    },
}


def all_schemas() -> dict[str, JSON]:
    """``components/schemas``: the request models' and the answers'."""
    found = model_schemas()
    clash = set(found) & set(RESPONSE_SCHEMAS)
    if clash:
        raise ValueError(f"schema names used twice: {sorted(clash)}")
    return {**found, **RESPONSE_SCHEMAS}
