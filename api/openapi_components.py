"""The shared parts of ``/openapi.json``: security schemes, parameters, headers and the error
answers every operation refers to (``components``), as the server reads and writes them."""

from __future__ import annotations

from anygate.api.files import MAX_LIST
from anygate.api.jobs import MAX_IDEMPOTENCY_KEY
from anygate.api.openapi_table import JSON, Shape, error_response_name, schema_ref
from anygate.broker import JobStatus

TENANT_KEY = (
    "A tenant key (`ag-…`). Scopes (`inference`, `jobs`, `batches`) are listed per operation; "
    "a key without the operation's scope, or of a disabled tenant, is a 403."
)
ADMIN_KEY = (
    "An operator key: one of the config's `admin_api_keys` / `admin_api_key_sha256`, or a key "
    "with the `admin` scope (`POST /admin/keys` with no tenant)."
)

SECURITY_SCHEMES: dict[str, JSON] = {
    "tenantBearer": {"type": "http", "scheme": "bearer", "description": TENANT_KEY},
    "adminBearer": {"type": "http", "scheme": "bearer", "description": ADMIN_KEY},
    "xApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "The same key as the bearer token, in `x-api-key`.",
    },
    "googApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "x-goog-api-key",
        "description": "The tenant key as `google-genai` sends it.",
    },
    "keyQuery": {
        "type": "apiKey",
        "in": "query",
        "name": "key",
        "description": "The key in Google's query-string form.",
    },
    "anygateApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "x-anygate-api-key",
        "description": "The gateway key when the SDK's own key header carries the client's "
        "provider key (BYOK: `auth_mode` `passthrough` or `hybrid`).",
    },
}


def _param(
    name: str, where: str, description: str, schema: JSON, *, required: bool = False
) -> JSON:
    return {
        "name": name,
        "in": where,
        "description": description,
        "required": required or where == "path",
        "schema": schema,
    }


STR: JSON = {"type": "string"}
DATE: JSON = {"type": "string", "format": "date"}

PARAMETERS: dict[str, JSON] = {
    "path.job_id": _param("job_id", "path", "A job id (`POST /v1/jobs` answered it).", STR),
    "path.file_id": _param("file_id", "path", "A file id.", STR),
    "path.batch_id": _param("batch_id", "path", "A batch id.", STR),
    "path.tenant_id": _param("tenant_id", "path", "A tenant id.", STR),
    "path.key_id": _param("key_id", "path", "An API key's id (`key_…`), never the key.", STR),
    "path.pool": _param("pool", "path", "A pool: a configured provider's name.", STR),
    "path.target": _param(
        "target",
        "path",
        "GET: a model alias (optionally `models/<alias>`). POST (Gemini): "
        "`<model>:<method>`, the method one of `generateContent`, `streamGenerateContent`, "
        "`embedContent`, `batchEmbedContents`, `countTokens`.",
        STR,
    ),
    "Limit": _param(
        "limit", "query", "Page size.", {"type": "integer", "minimum": 1, "maximum": 100}
    ),
    "FileLimit": _param(
        "limit", "query", "Page size.", {"type": "integer", "minimum": 1, "maximum": MAX_LIST}
    ),
    "After": _param("after", "query", "The `last_id` of the previous page.", STR),
    "JobStatus": _param(
        "status", "query", "Only jobs in this status.", {"enum": [s.value for s in JobStatus]}
    ),
    "Wait": _param(
        "wait",
        "query",
        "Long-poll: answer as soon as the job is terminal, or with its state after this many "
        "seconds (at most `server.long_poll_max_s`).",
        {"type": "number", "minimum": 0},
    ),
    "EventsAfter": _param(
        "after",
        "query",
        "Resume after this event id (`<ms>` or `<ms>-<seq>`); `Last-Event-ID` wins.",
        STR,
    ),
    "FilePurpose": _param("purpose", "query", "Only files of this purpose.", STR),
    "Order": _param("order", "query", "By creation time.", {"enum": ["asc", "desc"]}),
    "Start": _param("start", "query", "First UTC day (default: today).", DATE),
    "End": _param("end", "query", "Last UTC day, included (default: today).", DATE),
    "From": _param("from", "query", "First UTC day (default: today).", DATE),
    "To": _param("to", "query", "Last UTC day, included (default: today).", DATE),
    "UsageTenant": _param("tenant", "query", "Only this tenant.", STR),
    "UsageFormat": _param("format", "query", "Answer as JSON or CSV.", {"enum": ["json", "csv"]}),
    "KeysTenant": _param("tenant", "query", "This tenant's keys (absent: operator keys).", STR),
    "DeadPool": _param("pool", "query", "The pool.", STR, required=True),
    "Alt": _param(
        "alt",
        "query",
        "`sse`: stream as Server-Sent Events; otherwise a JSON array streamed piece by piece.",
        {"enum": ["sse"]},
    ),
    "RequestIdIn": _param(
        "x-request-id",
        "header",
        "Your request id, kept when it is 1-128 of `[A-Za-z0-9._:-]`, else replaced; echoed "
        "on the answer and logged.",
        {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
    ),
    "IdempotencyKey": _param(
        "Idempotency-Key",
        "header",
        "The same key from the same tenant within `retention.idempotency_ttl_s` answers the "
        "first job (`idempotent-replayed: true`); with another body, a 409.",
        {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
    ),
    "LastEventId": _param(
        "Last-Event-ID",
        "header",
        "Resume after this event id (`<ms>` or `<ms>-<seq>`), as an EventSource sends it.",
        STR,
    ),
    "CacheMode": _param(
        "x-anygate-cache",
        "header",
        "The response cache: `use`, `skip` or `refresh` (else a 400).",
        {"enum": ["use", "skip", "refresh"]},
    ),
    "ProviderKey": _param(
        "x-anygate-provider-key",
        "header",
        "The client's own provider key (BYOK), for `auth_mode` `passthrough` or `hybrid`.",
        STR,
    ),
}

HEADERS: dict[str, JSON] = {
    "RequestId": {"description": "The request's id (yours, or `req_…`).", "schema": STR},
    "JobId": {"description": "The job behind this answer.", "schema": STR},
    "Location": {"description": "`/v1/jobs/{id}`.", "schema": STR},
    "IdempotentReplayed": {
        "description": "`true`: an earlier request with this Idempotency-Key made the job.",
        "schema": {"const": "true"},
    },
    "CacheVerdict": {
        "description": "The response cache's verdict.",
        "schema": {"enum": ["hit", "miss"]},
    },
    "ShouldRetry": {
        "description": "`false`: the gateway already retried upstream; do not retry on top.",
        "schema": {"const": "false"},
    },
    "AccelBuffering": {"description": "`no`, on every stream.", "schema": {"const": "no"}},
    "CacheControl": {"description": "How long the answer may be cached.", "schema": STR},
    "ContentDisposition": {"description": "A file name for the download.", "schema": STR},
    "ContentLength": {"description": "The file's size in bytes.", "schema": {"type": "integer"}},
    "ETag": {"description": "Send it back in `If-None-Match` for a 304.", "schema": STR},
    "RetryAfter": {
        "description": "Whole seconds (at least 1) to wait before retrying.",
        "schema": {"type": "integer", "minimum": 1},
    },
}

ERROR_STATUSES: dict[int, str] = {
    400: "Invalid input: the `param` names the field (never a 422).",
    401: "No key, or an unknown, revoked or expired one (`missing_api_key`, `invalid_api_key`, "
    "`provider_key_required`).",
    403: "The key lacks the scope, or its tenant is disabled (`insufficient_scope`, "
    "`tenant_disabled`).",
    404: "No such object, or another tenant's (the two are indistinguishable).",
    409: "A conflict (`tenant_exists`, `idempotency_key_reused`).",
    413: "The body is too large (`payload_too_large`, `file_too_large`).",
    429: "A limit: the key's `rpm` (`rate_limit_exceeded`), the tenant's `max_queued` "
    "(`queue_full`) or a budget (`insufficient_quota`).",
    502: "The provider failed the call (its error, after the gateway's own retries).",
    503: "Redis is unreachable (`service_unavailable`), no deployment can serve soon "
    "(`circuit_open`, `deployment_cooling_down`), or the job was cancelled or expired.",
    504: "A synchronous call saw no event for `server.sync_timeout_s` (`gateway_timeout`); the "
    "job goes on.",
    0: "Any other error in the same shape: 405 `method_not_allowed`, 414 `url_too_long`, 431 "
    "`headers_too_large`, 500 (a bug: `x-request-id` finds it in the logs).",
}


def _error_response(status: int, shape: Shape) -> JSON:
    headers: JSON = {"x-request-id": {"$ref": "#/components/headers/RequestId"}}
    if status in {429, 503}:
        headers["retry-after"] = {"$ref": "#/components/headers/RetryAfter"}
    if status in {502, 503, 504}:
        headers["x-anygate-job-id"] = {"$ref": "#/components/headers/JobId"}
        headers["x-should-retry"] = {"$ref": "#/components/headers/ShouldRetry"}
    schema = schema_ref("GoogleError" if shape == "google" else "Error")
    return {
        "description": ERROR_STATUSES[status],
        "headers": headers,
        "content": {"application/json": {"schema": schema}},
    }


def responses() -> dict[str, JSON]:
    """An error answer per status, in each surface's shape."""
    shapes: tuple[Shape, ...] = ("openai", "google")
    return {
        error_response_name(status, shape): _error_response(status, shape)
        for shape in shapes
        for status in ERROR_STATUSES
    }
