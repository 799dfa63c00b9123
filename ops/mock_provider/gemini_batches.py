"""Gemini's batch mode: `models/{model}:batchGenerateContent` and the `batches` resource.

Every answer is a long-running Operation whose `metadata` is the `GenerateContentBatch`
(google-genai's `_BatchJob_from_mldev` reads `metadata.state`, `metadata.output`, ...). States
are the REST API's `BATCH_STATE_*`, which the SDK maps to `JobState.JOB_STATE_*`. Inline input
comes back in `output.inlinedResponses.inlinedResponses[]` in input order, each a `response` or
an `error` with its `metadata`; file input (JSONL of `{"key", "request"}`) comes back as a
`responsesFile` of `{"key", "response"|"error"}` lines. `:asyncBatchEmbedContent` takes the
same envelope with EmbedContentRequests; its inline responses carry `embedding`, which
google-genai files under `inlined_embed_content_responses`.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Mapping
from typing import Any

import orjson

from anygate.ops.mock_provider import gemini_files, gemini_wire
from anygate.ops.mock_provider.batch_jobs import BatchFaults, Snapshot, Timeline
from anygate.ops.mock_provider.batch_store import BatchBook, Job, LineRequest, LineResult, new_id
from anygate.ops.mock_provider.common import BadRequestError, numbered_json_lines
from anygate.ops.mock_provider.exchange import Exchange, Incoming
from anygate.ops.mock_provider.gemini_files import timestamp
from anygate.ops.mock_provider.settings import MockSettings

_BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
_OUTPUT_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput"
STATES: dict[str, str] = {
    "validating": "BATCH_STATE_PENDING",
    "in_progress": "BATCH_STATE_RUNNING",
    "finalizing": "BATCH_STATE_RUNNING",
    "cancelling": "BATCH_STATE_RUNNING",
    "completed": "BATCH_STATE_SUCCEEDED",
    "failed": "BATCH_STATE_FAILED",
    "expired": "BATCH_STATE_EXPIRED",
    "cancelled": "BATCH_STATE_CANCELLED",
}
_EXPIRED_LINE = {
    "code": 4,
    "message": "The batch expired before this request was processed.",
    "status": "DEADLINE_EXCEEDED",
}


def run_line(
    line: LineRequest, index: int, faults: BatchFaults, settings: MockSettings
) -> LineResult:
    """Answer one request exactly as live generateContent would (same text, same usage)."""
    response_id = base64.urlsafe_b64encode(os.urandom(15)).decode()
    status = faults.line_error(index)
    if status is not None:
        return LineResult(status, gemini_wire.fault_error(status, None), response_id)
    try:
        plan = gemini_wire.plan_generate(line.body, line.model, settings)
    except BadRequestError as exc:
        return LineResult(400, gemini_wire.error_body(400, exc.message), response_id)
    body = gemini_wire.generate_response(plan, response_id=response_id)
    return LineResult(200, body, response_id, plan.prompt_tokens, plan.candidates_tokens)


def run_embed_line(
    line: LineRequest, index: int, faults: BatchFaults, settings: MockSettings
) -> LineResult:
    """Answer one request of an embeddings batch as live embedContent would."""
    response_id = base64.urlsafe_b64encode(os.urandom(15)).decode()
    status = faults.line_error(index)
    if status is not None:
        return LineResult(status, gemini_wire.fault_error(status, None), response_id)
    try:
        body = gemini_wire.embed_content_response(line.body, settings)
    except BadRequestError as exc:
        return LineResult(400, gemini_wire.error_body(400, exc.message), response_id)
    return LineResult(200, body, response_id, gemini_wire.embed_token_count([line.body], settings))


def _field(mapping: Mapping[str, Any], camel: str, snake: str) -> Any:
    """Proto JSON accepts both spellings; google-genai sends camelCase."""
    value = mapping.get(camel)
    return mapping.get(snake) if value is None else value


def _inline_lines(requests: Any, model: str) -> list[LineRequest]:
    if not isinstance(requests, list) or not requests:
        raise BadRequestError("* batch.input_config.requests.requests: must not be empty")
    lines = []
    for index, item in enumerate(requests):
        request = item.get("request") if isinstance(item, Mapping) else None
        if not isinstance(request, Mapping):
            where = f"batch.input_config.requests.requests[{index}].request"
            raise BadRequestError(f"* {where}: a GenerateContentRequest is required")
        lines.append(LineRequest(key=item.get("metadata"), model=model, path="", body=request))
    return lines


def _file_lines(book: BatchBook, file_name: Any, model: str) -> list[LineRequest]:
    if not isinstance(file_name, str) or not file_name.startswith("files/"):
        raise BadRequestError("* batch.input_config.file_name: must be files/{id}")
    stored = gemini_files.lookup(book, file_name[len("files/") :])
    lines = []
    for number, item in numbered_json_lines(stored.data):
        request = item.get("request") if isinstance(item, dict) else None
        if not isinstance(request, dict):
            raise BadRequestError(
                f'Input file {file_name} line {number}: expected {{"key", "request"}}.'
            )
        lines.append(LineRequest(key=item.get("key"), model=model, path="", body=request))
    if not lines:
        raise BadRequestError(f"Input file {file_name} holds no requests.")
    return lines


def create(
    incoming: Incoming,
    book: BatchBook,
    settings: MockSettings,
    model: str,
    version: str,
    *,
    embed: bool = False,
) -> Exchange:
    """`:batchGenerateContent`, or with `embed` `:asyncBatchEmbedContent` (same envelope)."""
    body = incoming.json()
    batch = body.get("batch") if isinstance(body, Mapping) else None
    if not isinstance(batch, Mapping):
        raise BadRequestError("* batch: a GenerateContentBatch is required")
    config = _field(batch, "inputConfig", "input_config")
    if not isinstance(config, Mapping):
        raise BadRequestError("* batch.input_config: required")
    requests = config.get("requests")
    file_name = _field(config, "fileName", "file_name")
    if (requests is None) == (file_name is None):
        raise BadRequestError("* batch.input_config: exactly one of requests or file_name")
    path = f"/{version}/models/{model}:{'embedContent' if embed else 'generateContent'}"
    if requests is not None:
        inner = requests.get("requests") if isinstance(requests, Mapping) else None
        lines = _inline_lines(inner, model)
    else:
        lines = _file_lines(book, file_name, model)
    lines = [LineRequest(line.key, model, path, line.body) for line in lines]
    now = time.time()
    display = _field(batch, "displayName", "display_name")
    job = Job(
        id=new_id("", 10),
        provider="gemini",
        timeline=Timeline(now, settings.batch_delay_s, len(lines), book.faults.take("gemini")),
        lines=lines,
        runner=run_embed_line if embed else run_line,
        details={
            "model": f"models/{model}",
            "display_name": display if isinstance(display, str) else "",
            "inline": requests is not None,
        },
    )
    book.add_job(job)
    return gemini_files.ok(incoming, operation(job, Snapshot("validating", 0), now))


def _inline_entry(line: LineRequest, result: LineResult | None) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if result is None:
        entry["error"] = _EXPIRED_LINE
    elif result.ok:
        entry["response"] = result.body
    else:
        entry["error"] = result.body["error"]
    if line.key is not None:
        entry["metadata"] = line.key
    return entry


def _entries(job: Job, state: Snapshot) -> list[dict[str, Any]]:
    entries = [
        _inline_entry(line, result) for line, result in zip(job.lines, job.results, strict=False)
    ]
    if state.status == "expired":
        entries += [_inline_entry(line, None) for line in job.lines[len(job.results) :]]
    return entries


def finish(job: Job, book: BatchBook, state: Snapshot) -> None:
    """Once a file-input job has ended, write its responses file (once)."""
    if job.finished or not state.terminal:
        return
    job.finished = True
    if job.details["inline"] or state.status == "failed":
        return
    rows = []
    for entry, line in zip(_entries(job, state), job.lines, strict=False):
        row = {"key": line.key, **{k: v for k, v in entry.items() if k != "metadata"}}
        rows.append(orjson.dumps(row) + b"\n")
    stored = gemini_files.add_generated(book, b"".join(rows), f"{job.id}-responses")
    job.outputs["output"] = f"files/{stored.id}"


def _stats(job: Job, state: Snapshot) -> dict[str, str]:
    done = job.results[: state.done]
    good = sum(1 for result in done if result.ok)
    failed = len(done) - good
    pending = 0 if state.terminal else len(job.lines) - len(done)
    if state.status == "expired":
        failed += len(job.lines) - len(done)
    stats = {"requestCount": str(len(job.lines))}
    if good:
        stats["successfulRequestCount"] = str(good)
    if failed:
        stats["failedRequestCount"] = str(failed)
    if pending:
        stats["pendingRequestCount"] = str(pending)
    return stats


def _output(job: Job, state: Snapshot) -> dict[str, Any] | None:
    if not state.terminal or state.status == "failed":
        return None
    if job.details["inline"]:
        return {"inlinedResponses": {"inlinedResponses": _entries(job, state)}}
    file_name = job.outputs.get("output")
    return {"responsesFile": file_name} if file_name else None


def operation(job: Job, state: Snapshot, now: float) -> dict[str, Any]:
    """The batch as the Operation google-genai parses: metadata is the GenerateContentBatch."""
    name = f"batches/{job.id}"
    ended = max(state.events.values()) if state.terminal and state.events else None
    metadata: dict[str, Any] = {
        "@type": _BATCH_TYPE,
        "model": job.details["model"],
        "displayName": job.details["display_name"],
        "createTime": timestamp(job.timeline.created_at),
        "updateTime": timestamp(ended if ended is not None else now),
        "batchStats": _stats(job, state),
        "state": STATES[state.status],
        "name": name,
    }
    if ended is not None:
        metadata["endTime"] = timestamp(ended)
    result: dict[str, Any] = {"name": name, "metadata": metadata}
    output = _output(job, state)
    if output is not None:
        metadata["output"] = output
    if state.terminal:
        result["done"] = True
        if state.status == "failed":
            result["error"] = {"code": 13, "message": "The batch failed (mock fault)."}
        elif output is not None:
            result["response"] = {"@type": _OUTPUT_TYPE, **output}
    return result
