"""Gemini's batch mode format: each job as an inlined ``GenerateContentRequest`` keyed by its job
id, and each inlined response (or results-file line) read back into an OpenAI-format answer.

Jobs are OpenAI-format whatever the provider, so a line is translated on the way out and its
answer on the way back with ``anygate.core.translate``, exactly as a live Gemini call is. Gemini's
batch mode serves ``generateContent`` only: embeddings go live.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from anygate.broker.errors import InvalidRequestError, UpstreamRejectedError
from anygate.core.translate import chat_request_to_gemini, gemini_response_to_chat
from anygate.workers.adapters.http import error_for_status
from anygate.workers.provider_batch.lines import (
    BatchRequest,
    LineResult,
    ReadBack,
    complete,
    done,
    not_run,
    refused,
)

CHAT = "/v1/chat/completions"


def inlined_request(request: BatchRequest) -> dict[str, Any]:
    """``{"request": …, "metadata": {"key": job id}}``; a request Gemini cannot carry raises
    ``UpstreamRejectedError`` (the API refuses those at submit; a fallback may still bring one)."""
    if request.endpoint != CHAT:
        raise ValueError(f"Gemini's batch mode does not serve {request.endpoint}")
    body: dict[str, Any] = orjson.loads(request.body)
    body.pop("stream", None)
    body.pop("stream_options", None)
    try:
        translated = chat_request_to_gemini(body)
    except InvalidRequestError as exc:
        raise UpstreamRejectedError(exc.message, code=exc.code) from None
    return {"request": translated, "metadata": {"key": request.job_id}}


def _key(item: dict[str, Any]) -> str | None:
    """Inlined responses carry the request's metadata; a results file names ``key``."""
    metadata = item.get("metadata")
    key = metadata.get("key") if isinstance(metadata, dict) else item.get("key")
    return key if isinstance(key, str) else None


def _line_result(job_id: str, item: dict[str, Any], model: str, created: int) -> LineResult:
    response, error = item.get("response"), item.get("error")
    if isinstance(response, dict):
        response_id = "chatcmpl-" + job_id.removeprefix("job_")
        chat = gemini_response_to_chat(
            response, model=model, response_id=response_id, created=created
        )
        return done(job_id, chat)
    if isinstance(error, dict):
        status = error.get("code")
        if isinstance(status, int) and 400 <= status < 600:
            return refused(job_id, error_for_status(status, orjson.dumps({"error": error}), {}))
    return not_run(job_id)


def read_responses(
    items: Iterable[Any], job_ids: list[str], *, model: str, created: int
) -> ReadBack:
    """One result per job of the batch from inlined responses or a results file's lines (each
    decoded to a dict; anything else counts as a stray)."""
    wanted = set(job_ids)
    back = ReadBack()
    for item in items:
        job_id = _key(item) if isinstance(item, dict) else None
        if job_id is None or job_id not in wanted or job_id in back.results:
            back.strays += 1
            continue
        back.results[job_id] = _line_result(job_id, item, model, created)
    back.results = complete(back.results, job_ids)
    return back
