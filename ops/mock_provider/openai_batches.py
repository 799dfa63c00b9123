"""OpenAI's Batch API: create, retrieve, list and cancel, with output and error files.

Shapes follow openai-python's `Batch` (statuses, `*_at` timestamps, `request_counts`,
`errors.data[]` of `BatchError`, `usage`) and the batch guide's output lines
(`{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}`). Input
problems (a line for another endpoint, a duplicate `custom_id`, mixed models) do not refuse the
create call: as upstream, the batch is created and fails validation with each problem listed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from anygate.ops.mock_provider import openai_embeddings, openai_wire
from anygate.ops.mock_provider.batch_jobs import BatchFaults, Snapshot, Timeline
from anygate.ops.mock_provider.batch_store import (
    BatchBook,
    Job,
    LineRequest,
    LineResult,
    StoredFile,
    new_id,
)
from anygate.ops.mock_provider.common import BadRequestError, numbered_json_lines
from anygate.ops.mock_provider.exchange import Exchange, Incoming
from anygate.ops.mock_provider.openai_files import cursor_page, lookup, ok
from anygate.ops.mock_provider.settings import MockSettings

ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings")
COMPLETION_WINDOW_S = 24 * 3600
_MAX_METADATA = 16
_UNRUN = {
    "expired": (
        "batch_expired",
        "This request could not be executed before the completion window expired.",
    ),
}


def _parse_lines(raw: bytes, endpoint: str) -> tuple[list[LineRequest], list[dict[str, Any]]]:
    """The file's requests, and the validation errors OpenAI would report for it."""
    lines: list[LineRequest] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    models: set[str] = set()

    def problem(code: str, number: int, message: str, param: str | None) -> None:
        errors.append({"code": code, "line": number, "message": message, "param": param})

    for number, item in numbered_json_lines(raw):
        if not isinstance(item, dict):
            problem("invalid_json_line", number, "This line is not parseable as valid JSON.", None)
            continue
        custom_id, url, body = item.get("custom_id"), item.get("url"), item.get("body")
        if not isinstance(custom_id, str) or not custom_id:
            problem("missing_required_parameter", number, "Missing 'custom_id'.", "custom_id")
            continue
        if item.get("method") != "POST":
            problem("invalid_value", number, "The method must be 'POST'.", "method")
            continue
        if url != endpoint:
            message = (
                f"The URL provided for this request does not match the batch endpoint {endpoint}."
            )
            problem("url_mismatch", number, message, "url")
            continue
        if not isinstance(body, dict):
            problem("missing_required_parameter", number, "Missing 'body'.", "body")
            continue
        if custom_id in seen:
            message = (
                "The custom_id for this request is a duplicate of another request. The"
                " custom_id parameter must be unique for each request in a batch."
            )
            problem("duplicate_custom_id", number, message, "custom_id")
            continue
        seen.add(custom_id)
        model = body.get("model")
        model_name = model if isinstance(model, str) else ""
        models.add(model_name)
        if len(models) > 1:
            message = (
                f"The provided model '{model_name}' does not match the model of other requests"
                " in the batch. Each batch file may only include requests for a single model."
            )
            problem("model_mismatch", number, message, "body.model")
            continue
        lines.append(LineRequest(key=custom_id, model=model_name, path=url, body=body))
    if not lines and not errors:
        problem("empty_file", 0, "The batch input file is empty.", None)
    return lines, errors


def run_line(
    line: LineRequest, index: int, faults: BatchFaults, settings: MockSettings
) -> LineResult:
    """Answer one line exactly as the live endpoint would (same text, same usage)."""
    request_id = new_id("req_", 16)
    status = faults.line_error(index)
    if status is not None:
        return LineResult(status, openai_wire.fault_error(status), request_id)
    try:
        if line.path == "/v1/embeddings":
            embedding = openai_embeddings.plan_embeddings(line.body, settings)
            body = openai_embeddings.embeddings_response(embedding)
            return LineResult(200, body, request_id, embedding.prompt_tokens)
        plan = openai_wire.plan_chat(line.body, settings)
        completion = openai_wire.chat_completion(
            plan, completion_id=new_id("chatcmpl-"), created=int(time.time())
        )
        return LineResult(200, completion, request_id, plan.prompt_tokens, plan.completion_tokens)
    except BadRequestError as exc:
        return LineResult(400, openai_wire.error_body(exc.message, param=exc.param), request_id)


def _metadata(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if (
        not isinstance(value, Mapping)
        or len(value) > _MAX_METADATA
        or not all(
            isinstance(key, str) and isinstance(item, str) and len(key) <= 64 and len(item) <= 512
            for key, item in value.items()
        )
    ):
        raise BadRequestError(
            "Invalid 'metadata': at most 16 string pairs (keys up to 64, values up to 512"
            " characters).",
            param="metadata",
        )
    return dict(value)


def create(incoming: Incoming, book: BatchBook, settings: MockSettings) -> Exchange:
    body = incoming.json()
    if not isinstance(body, Mapping):
        raise BadRequestError("The request body must be a JSON object.")
    endpoint = body.get("endpoint")
    if endpoint not in ENDPOINTS:
        message = f"Invalid value for 'endpoint': the mock batches {', '.join(ENDPOINTS)}."
        raise BadRequestError(message, param="endpoint")
    if body.get("completion_window") != "24h":
        message = "Invalid value for 'completion_window': only '24h' is supported."
        raise BadRequestError(message, param="completion_window")
    file_id = body.get("input_file_id")
    if not isinstance(file_id, str):
        raise BadRequestError("Missing required parameter: 'input_file_id'.", param="input_file_id")
    metadata = _metadata(body.get("metadata"))
    source = lookup(book, file_id)
    if source.purpose != "batch":
        message = f"File {file_id} has purpose '{source.purpose}'; a batch needs 'batch'."
        raise BadRequestError(message, param="input_file_id")
    lines, errors = _parse_lines(source.data, str(endpoint))
    now = time.time()
    faults = book.faults.take("openai")
    job = Job(
        id=new_id("batch_"),
        provider="openai",
        timeline=Timeline(now, settings.batch_delay_s, len(lines), faults),
        lines=lines,
        runner=run_line,
        details={"endpoint": endpoint, "input_file_id": file_id, "metadata": metadata},
        invalid=errors,
    )
    book.add_job(job)
    return ok(incoming, batch_object(job, Snapshot("validating", 0)))


def _output_line(line: LineRequest, result: LineResult) -> dict[str, Any]:
    response = {"status_code": result.status, "request_id": result.request_id, "body": result.body}
    return {"id": new_id("batch_req_"), "custom_id": line.key, "response": response, "error": None}


def _write(book: BatchBook, job: Job, role: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    data = b"".join(orjson.dumps(row) + b"\n" for row in rows)
    stored = StoredFile(
        id=new_id("file-", 11),
        provider="openai",
        filename=f"{job.id}_{role}.jsonl",
        purpose="batch_output",
        data=data,
        created_at=time.time(),
        generated=True,
    )
    job.outputs[role] = book.add_file(stored).id


def finish(job: Job, book: BatchBook, state: Snapshot) -> None:
    """Once the job has ended, write its output and error files (once)."""
    if job.finished or not state.terminal:
        return
    job.finished = True
    pairs = list(zip(job.lines, job.results, strict=False))
    good = [_output_line(line, result) for line, result in pairs if result.ok]
    bad = [_output_line(line, result) for line, result in pairs if not result.ok]
    unrun = _UNRUN.get(state.status)
    if unrun is not None:
        code, message = unrun
        for line in job.lines[len(job.results) :]:
            bad.append(
                {
                    "id": new_id("batch_req_"),
                    "custom_id": line.key,
                    "response": None,
                    "error": {"code": code, "message": message},
                }
            )
    _write(book, job, "output", good)
    _write(book, job, "error", bad)


def _counts(job: Job, state: Snapshot) -> dict[str, int]:
    done = job.results[: state.done]
    completed = sum(1 for result in done if result.ok)
    failed = len(done) - completed
    if state.status in _UNRUN:
        failed += len(job.lines) - len(done)
    return {"total": len(job.lines), "completed": completed, "failed": failed}


def _usage(job: Job) -> dict[str, Any]:
    prompt = sum(result.prompt_tokens for result in job.results)
    completion = sum(result.completion_tokens for result in job.results)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def batch_object(job: Job, state: Snapshot) -> dict[str, Any]:
    created = int(job.timeline.created_at)
    events = {name: int(at) for name, at in state.events.items()}
    errors = None
    if job.invalid and state.status == "failed":
        errors = {"object": "list", "data": job.invalid}
    elif state.status == "failed":
        failure = {
            "code": "batch_failed",
            "line": None,
            "message": "The batch failed (mock fault).",
            "param": None,
        }
        errors = {"object": "list", "data": [failure]}
    return {
        "id": job.id,
        "object": "batch",
        "endpoint": job.details["endpoint"],
        "model": job.lines[0].model if job.lines else None,
        "errors": errors,
        "input_file_id": job.details["input_file_id"],
        "completion_window": "24h",
        "status": state.status,
        "output_file_id": job.outputs.get("output"),
        "error_file_id": job.outputs.get("error"),
        "created_at": created,
        "in_progress_at": events.get("in_progress"),
        "expires_at": created + COMPLETION_WINDOW_S,
        "finalizing_at": events.get("finalizing"),
        "completed_at": events.get("completed"),
        "failed_at": events.get("failed"),
        "expired_at": events.get("expired"),
        "cancelling_at": events.get("cancelling"),
        "cancelled_at": events.get("cancelled"),
        "request_counts": _counts(job, state),
        "usage": _usage(job),
        "metadata": job.details["metadata"],
    }


def listing(incoming: Incoming, rendered: list[dict[str, Any]]) -> Exchange:
    return ok(incoming, cursor_page(rendered, incoming))
