"""OpenAI, OpenAI-compatible servers and Azure OpenAI: chat completions (streamed or not) and
embeddings. Azure's bodies, streams and errors are OpenAI's; only its URLs and its ``api-key``
header differ, and those are the target's (``targets.OpenAITarget``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from anygate.broker import ClaimedJob
from anygate.broker.errors import UpstreamRejectedError, UpstreamTransientError
from anygate.workers.adapters.auth import json_headers
from anygate.workers.adapters.base import Account, CallOutcome, ChunkSink
from anygate.workers.adapters.http import json_object
from anygate.workers.adapters.targets import OpenAITarget, Targets
from anygate.workers.adapters.upstream import UpstreamClient
from anygate.workers.assemble import assemble_chat_completion

SERVED = frozenset({"/v1/chat/completions", "/v1/embeddings"})
"""The job endpoints an OpenAI API has. Gemini's ``:countTokens`` is not one: the planner never
routes it here, and a job that still arrives (its plan's provider changed kind in a reload)
fails as rejected rather than reaching a URL that does not exist."""


class OpenAIAdapter:
    def __init__(self, targets: Targets[OpenAITarget], client: UpstreamClient) -> None:
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
        if job.endpoint not in SERVED:
            raise UpstreamRejectedError(
                f"{job.endpoint} is not served by OpenAI", code="endpoint_not_served"
            )
        body: dict[str, Any] = orjson.loads(job.body)
        body["model"] = upstream_model
        target = self._targets.of(account)
        url = target.url(job.endpoint, upstream_model)
        headers = await json_headers(target.auth, api_key)
        if job.endpoint == "/v1/chat/completions" and job.stream:
            return await self._stream_chat(url, body, on_chunk, headers)
        return await self._post(url, body, headers)

    async def _post(
        self, url: str, body: dict[str, Any], headers: Mapping[str, str]
    ) -> CallOutcome:
        result = await self._client.post_json(url, body, headers)
        return CallOutcome(result, result.get("usage"))

    async def _stream_chat(
        self, url: str, body: dict[str, Any], on_chunk: ChunkSink, headers: Mapping[str, str]
    ) -> CallOutcome:
        body["stream"] = True
        options = dict(body.get("stream_options") or {})
        options["include_usage"] = True
        body["stream_options"] = options
        chunks: list[dict[str, Any]] = []
        finished = False
        async with self._client.sse_events(url, body, headers) as batches:
            async for batch in batches:
                for event in batch:
                    if event.data == "[DONE]":
                        finished = True
                        break
                    chunk = json_object(event.data, what="stream chunk", code="malformed_chunk")
                    if "error" in chunk:
                        msg = (chunk.get("error") or {}).get("message") or "upstream stream error"
                        raise UpstreamTransientError(str(msg), code="upstream_stream_error")
                    chunks.append(chunk)
                    await on_chunk(event.data.encode())
                if finished:
                    break
        if not finished:
            raise UpstreamTransientError(
                "upstream stream ended before [DONE]", code="incomplete_stream"
            )
        result = assemble_chat_completion(chunks)
        return CallOutcome(result, result.get("usage"))
