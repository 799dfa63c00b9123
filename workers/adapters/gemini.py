"""Google Gemini (Generative Language API): chat via generateContent, embeddings via embedContent.

Jobs are OpenAI-format whatever the provider, so this adapter translates each request to
Gemini's format and each response (or streamed event) back, with ``anygate.core.translate``.
Vertex AI speaks the same format at other URLs with an OAuth token: those are the target's
(``targets.GeminiTarget``). The key travels only in a header (``x-goog-api-key``): never in
the URL (where it would end up in access logs and in client error messages) nor in an error.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import orjson

from anygate.broker import COUNT_TOKENS, ClaimedJob
from anygate.broker.errors import (
    InvalidRequestError,
    UpstreamError,
    UpstreamRejectedError,
    UpstreamTransientError,
)
from anygate.core.translate import (
    GeminiStreamToChat,
    chat_request_to_gemini,
    count_is_valid,
    count_tokens_request,
    embeddings_request_to_gemini,
    gemini_embeddings_to_openai,
    gemini_response_to_chat,
)
from anygate.workers.adapters.auth import json_headers
from anygate.workers.adapters.base import Account, CallOutcome, ChunkSink
from anygate.workers.adapters.http import error_for_status, json_object
from anygate.workers.adapters.targets import GeminiTarget, Targets
from anygate.workers.adapters.upstream import UpstreamClient
from anygate.workers.assemble import assemble_chat_completion

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"


@contextmanager
def _translating() -> Iterator[None]:
    """A request that cannot be translated fails at once; retrying would not change it.

    The API refuses such requests at submit time; this catches the ones that reach Gemini as a
    fallback of a route that started on another provider.
    """
    try:
        yield
    except InvalidRequestError as exc:
        raise UpstreamRejectedError(exc.message, code=exc.code) from None


def _stream_error(chunk: dict[str, Any]) -> UpstreamError:
    """An error event inside a 200 stream, classified by the status it names."""
    error = chunk.get("error")
    status = error.get("code") if isinstance(error, dict) else None
    if isinstance(status, int) and 400 <= status < 600:
        failure = error_for_status(status, orjson.dumps(chunk), {})
        if isinstance(failure, UpstreamRejectedError):
            # The stream was accepted; a late refusal is the provider's trouble, not the request's.
            return UpstreamTransientError(
                failure.message, upstream_status=status, code=failure.code
            )
        return failure
    message = error.get("message") if isinstance(error, dict) else None
    text = str(message or "upstream stream error")
    return UpstreamTransientError(text, code="upstream_stream_error")


def _with_tool_call_extras(result: dict[str, Any], chunks: list[dict[str, Any]]) -> None:
    """``assemble_chat_completion`` keeps OpenAI's fields only; Gemini's thought signatures
    ride on tool calls as ``extra_content`` and must survive the fold."""
    by_index = {choice["index"]: choice for choice in result["choices"]}
    for chunk in chunks:
        for choice in chunk.get("choices") or ():
            for delta in (choice.get("delta") or {}).get("tool_calls") or ():
                if "extra_content" not in delta:
                    continue
                target = by_index[choice["index"]]["message"]["tool_calls"]
                target[delta["index"]]["extra_content"] = delta["extra_content"]


class GeminiAdapter:
    def __init__(self, targets: Targets[GeminiTarget], client: UpstreamClient) -> None:
        self._targets = targets
        self._client = client

    async def aclose(self) -> None:
        await self._client.aclose()

    async def call(
        self,
        job: ClaimedJob,
        upstream_model: str,
        on_chunk: ChunkSink,
        api_key: str | None = None,
        *,
        account: Account | None = None,
    ) -> CallOutcome:
        body: dict[str, Any] = orjson.loads(job.body)
        target = self._targets.of(account)
        headers = await json_headers(target.auth, api_key)
        if job.endpoint == EMBEDDINGS:
            return await self._embed(body, upstream_model, target, headers)
        if job.endpoint == COUNT_TOKENS:
            return await self._count_tokens(body, upstream_model, target, headers)
        if job.endpoint != CHAT:
            raise UpstreamRejectedError(f"{job.endpoint} is not served by Gemini")
        with _translating():
            request = chat_request_to_gemini(body)
        response_id = "chatcmpl-" + job.id.removeprefix("job_")
        if job.stream:
            return await self._stream_chat(
                request, upstream_model, response_id, on_chunk, target=target, headers=headers
            )
        return await self._chat(request, upstream_model, response_id, target, headers)

    async def _chat(
        self,
        request: dict[str, Any],
        upstream_model: str,
        response_id: str,
        target: GeminiTarget,
        headers: Mapping[str, str],
    ) -> CallOutcome:
        url = target.url(upstream_model, "generateContent")
        answer = await self._client.post_json(url, request, headers)
        result = gemini_response_to_chat(
            answer, model=upstream_model, response_id=response_id, created=int(time.time())
        )
        if not result["choices"]:
            raise UpstreamTransientError(
                "upstream answered without a candidate", code="incomplete_response"
            )
        return CallOutcome(result, result["usage"])

    async def _stream_chat(
        self,
        request: dict[str, Any],
        upstream_model: str,
        response_id: str,
        on_chunk: ChunkSink,
        *,
        target: GeminiTarget,
        headers: Mapping[str, str],
    ) -> CallOutcome:
        url = target.url(upstream_model, "streamGenerateContent") + "?alt=sse"
        translator = GeminiStreamToChat(
            model=upstream_model, response_id=response_id, created=int(time.time())
        )
        chunks: list[dict[str, Any]] = []
        async with self._client.sse_events(url, request, headers) as batches:
            async for batch in batches:
                for event in batch:
                    if not event.data:
                        continue
                    event_body = json_object(
                        event.data, what="stream chunk", code="malformed_chunk"
                    )
                    if "error" in event_body:
                        raise _stream_error(event_body)
                    for chunk in translator.feed(event_body):
                        chunks.append(chunk)
                        await on_chunk(orjson.dumps(chunk))
        if not translator.finished:
            raise UpstreamTransientError(
                "upstream stream ended before a finish reason", code="incomplete_stream"
            )
        for chunk in translator.close():
            chunks.append(chunk)
            await on_chunk(orjson.dumps(chunk))
        result = assemble_chat_completion(chunks)
        _with_tool_call_extras(result, chunks)
        return CallOutcome(result, result.get("usage"))

    async def _embed(
        self,
        body: dict[str, Any],
        upstream_model: str,
        target: GeminiTarget,
        headers: Mapping[str, str],
    ) -> CallOutcome:
        with _translating():
            method, request = embeddings_request_to_gemini(body, upstream_model)
        answer = await self._client.post_json(target.url(upstream_model, method), request, headers)
        expected = len(request.get("requests") or [request])
        if len(answer.get("embeddings") or [answer.get("embedding")]) != expected:
            raise UpstreamTransientError(
                f"upstream returned a different number of embeddings than the {expected} asked",
                code="malformed_response",
            )
        encoding = body.get("encoding_format")
        result = gemini_embeddings_to_openai(
            answer,
            model=upstream_model,
            encoding_format=encoding if isinstance(encoding, str) else None,
        )
        return CallOutcome(result, result["usage"])

    async def _count_tokens(
        self,
        body: dict[str, Any],
        upstream_model: str,
        target: GeminiTarget,
        headers: Mapping[str, str],
    ) -> CallOutcome:
        """``:countTokens`` (docs/api.md#counttokens), the one job that is not OpenAI-format:
        its body is Gemini's own request, and Gemini's ``CountTokensResponse`` is passed on as
        it came. No usage and no cost: counting generates nothing."""
        request = count_tokens_request(body, upstream_model)
        url = target.url(upstream_model, "countTokens")
        answer = await self._client.post_json(url, request, headers)
        if not count_is_valid(answer):
            raise UpstreamTransientError(
                "upstream answered countTokens without a valid totalTokens",
                code="malformed_response",
            )
        return CallOutcome(answer, None)
