"""``/openapi.json`` rows for the native surfaces: jobs and their events, files, batches, the
tenant's usage, and the ops endpoints (docs/api.md)."""

from __future__ import annotations

from anygate.api.files import MAX_EXPIRY_S, MIN_EXPIRY_S
from anygate.api.openapi_table import JSON, Answer, Body, Op, schema_ref
from anygate.broker import TERMINAL_EVENTS

JOB_EXAMPLE: JSON = {
    "endpoint": "/v1/chat/completions",
    "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hi"}]},
    "priority": "standard",
    "metadata": {"ticket": "T-1042"},
}
BATCH_EXAMPLE: JSON = {
    "input_file_id": "file-0123456789abcdef",
    "endpoint": "/v1/chat/completions",
    "completion_window": "24h",
    "metadata": {"run": "nightly"},
}

EVENT_TYPES = ("queued", "started", "chunk", "retry", *sorted(TERMINAL_EVENTS))
"""Every event type of a job's log (``broker/lua``: ``record``/``emit``; chunks from the
worker's relay)."""

SSE: JSON = {
    "type": "string",
    "description": "Server-Sent Events. Each event has `id: <ms>-<seq>`, `event: <type>` and "
    "`data: <JSON>`; types: "
    + ", ".join(f"`{t}`" for t in EVENT_TYPES)
    + ". A `chunk` is an OpenAI `chat.completion.chunk` with the `attempt` it came from; a "
    "`retry` voids the chunks of earlier attempts; the stream ends after a terminal event ("
    + ", ".join(f"`{t}`" for t in sorted(TERMINAL_EVENTS))
    + "). A `: keep-alive` comment follows `server.keepalive_s` of silence.",
}

UPLOAD: JSON = {
    "type": "object",
    "properties": {
        "file": {
            "type": "string",
            "contentMediaType": "application/octet-stream",
            "description": "JSONL: one request per line with `custom_id`, `method`, `url`, `body`.",
        },
        "purpose": {"const": "batch"},
        "expires_after[anchor]": {"const": "created_at"},
        "expires_after[seconds]": {
            "type": "integer",
            "minimum": MIN_EXPIRY_S,
            "maximum": MAX_EXPIRY_S,
        },
    },
    "required": ["file", "purpose"],
}

JOB_HEADERS = ("x-anygate-job-id",)

HEALTH = [
    Op(
        "GET",
        "/healthz",
        "healthz",
        "ops",
        "Liveness: the process runs",
        "none",
        (Answer(200, "Alive.", schema_ref("Health")),),
    ),
    Op(
        "GET",
        "/readyz",
        "readyz",
        "ops",
        "Readiness: start-up done, Redis answers, durability holds",
        "none",
        (
            Answer(200, "Ready.", schema_ref("Ready")),
            Answer(503, "Not ready, and why.", schema_ref("Ready"), ("retry-after",)),
        ),
    ),
    Op(
        "GET",
        "/openapi.json",
        "openapi",
        "ops",
        "This document",
        "none",
        (
            Answer(
                200,
                "The OpenAPI 3.1 document of this server's routes.",
                {"type": "object"},
                ("cache-control", "etag"),
            ),
            Answer(304, "Unchanged since the `ETag` sent in `If-None-Match`.", None, ("etag",)),
        ),
    ),
]

METRICS = Op(
    "GET",
    "/metrics",
    "metrics",
    "ops",
    "This process's Prometheus series",
    "metrics",
    (Answer(200, "Prometheus text exposition.", {"type": "string"}, media="text/plain"),),
    description="Served as `metrics.api_access` says: `admin` (an operator key), `open`, or "
    "`port` (on a listener of its own; then this path is a 404 here). docs/metrics.md.",
)

JOBS = [
    Op(
        "POST",
        "/v1/jobs",
        "submitJob",
        "jobs",
        "Submit a job",
        "jobs",
        (
            Answer(
                202,
                "Accepted: the job, with `queue_position` and `estimated_start_at` when new.",
                schema_ref("Job"),
                ("location", "x-anygate-job-id", "idempotent-replayed"),
            ),
        ),
        params=("IdempotencyKey", "ProviderKey"),
        body=Body(schema_ref("SubmitJobRequest"), JOB_EXAMPLE),
        errors=(400, 404, 409, 413),
        description="A 404 `model_not_found` names an unknown model alias; a 429 "
        "`queue_full` or `insufficient_quota` refuses new work over the tenant's limits.",
    ),
    Op(
        "GET",
        "/v1/jobs",
        "listJobs",
        "jobs",
        "List the tenant's jobs, newest first",
        "jobs",
        (Answer(200, "A page of jobs.", schema_ref("JobList")),),
        params=("JobStatus", "Limit", "After"),
        errors=(400,),
    ),
    Op(
        "GET",
        "/v1/jobs/{job_id}",
        "getJob",
        "jobs",
        "Get a job; `?wait=` long-polls",
        "jobs",
        (Answer(200, "The job.", schema_ref("Job"), JOB_HEADERS),),
        params=("Wait",),
        errors=(400, 404),
    ),
    Op(
        "GET",
        "/v1/jobs/{job_id}/events",
        "jobEvents",
        "jobs",
        "The job's events as SSE, resumable",
        "jobs",
        (
            Answer(
                200,
                "The event log, then live events until a terminal one.",
                SSE,
                ("x-anygate-job-id", "cache-control", "x-accel-buffering"),
                media="text/event-stream",
            ),
        ),
        params=("LastEventId", "EventsAfter"),
        errors=(400, 404),
    ),
    Op(
        "POST",
        "/v1/jobs/{job_id}/cancel",
        "cancelJob",
        "jobs",
        "Cancel a job",
        "jobs",
        (Answer(200, "The job as it is now.", schema_ref("Job"), JOB_HEADERS),),
        errors=(404,),
    ),
]

FILES = [
    Op(
        "POST",
        "/v1/files",
        "uploadFile",
        "files",
        "Upload a batch file (multipart)",
        "batches",
        (Answer(200, "The file.", schema_ref("File")),),
        body=Body(UPLOAD, media="multipart/form-data"),
        errors=(400, 413),
        docs={"url": "https://platform.openai.com/docs/api-reference/files/create"},
    ),
    Op(
        "GET",
        "/v1/files",
        "listFiles",
        "files",
        "List the tenant's files",
        "batches",
        (Answer(200, "A page of files.", schema_ref("FileList")),),
        params=("FilePurpose", "FileLimit", "After", "Order"),
        errors=(400,),
    ),
    Op(
        "GET",
        "/v1/files/{file_id}",
        "getFile",
        "files",
        "Get a file object",
        "batches",
        (Answer(200, "The file.", schema_ref("File")),),
        errors=(404,),
    ),
    Op(
        "DELETE",
        "/v1/files/{file_id}",
        "deleteFile",
        "files",
        "Delete a file",
        "batches",
        (Answer(200, "Deleted.", schema_ref("FileDeleted")),),
        errors=(404,),
    ),
    Op(
        "GET",
        "/v1/files/{file_id}/content",
        "fileContent",
        "files",
        "Download a file's bytes",
        "batches",
        (
            Answer(
                200,
                "The bytes as uploaded or written.",
                {"type": "string", "contentMediaType": "application/octet-stream"},
                ("content-length",),
                media="application/octet-stream",
            ),
        ),
        errors=(404,),
    ),
]

BATCHES = [
    Op(
        "POST",
        "/v1/batches",
        "createBatch",
        "batches",
        "Create a batch from an uploaded file",
        "batches",
        (Answer(200, "The batch (`validating`).", schema_ref("Batch")),),
        body=Body(schema_ref("CreateBatch"), BATCH_EXAMPLE),
        errors=(400, 404, 413),
        docs={"url": "https://platform.openai.com/docs/api-reference/batch/create"},
    ),
    Op(
        "GET",
        "/v1/batches",
        "listBatches",
        "batches",
        "List the tenant's batches",
        "batches",
        (Answer(200, "A page of batches.", schema_ref("BatchList")),),
        params=("Limit", "After"),
        errors=(400,),
    ),
    Op(
        "GET",
        "/v1/batches/{batch_id}",
        "getBatch",
        "batches",
        "Get a batch",
        "batches",
        (Answer(200, "The batch.", schema_ref("Batch")),),
        errors=(404,),
    ),
    Op(
        "POST",
        "/v1/batches/{batch_id}/cancel",
        "cancelBatch",
        "batches",
        "Cancel a batch",
        "batches",
        (Answer(200, "The batch (`cancelling`).", schema_ref("Batch")),),
        errors=(404,),
    ),
]

USAGE = [
    Op(
        "GET",
        "/v1/usage",
        "tenantUsage",
        "usage",
        "The calling tenant's usage per model and UTC day",
        "jobs",
        (Answer(200, "Rows and totals.", schema_ref("TenantUsage")),),
        params=("Start", "End"),
        errors=(400,),
    ),
]


def native_ops(*, metrics: bool) -> list[Op]:
    """``metrics``: whether this server routes ``GET /metrics`` (``api/metrics_endpoint.py``)."""
    return [*HEALTH, *([METRICS] if metrics else []), *JOBS, *FILES, *BATCHES, *USAGE]
