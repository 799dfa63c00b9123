"""OpenAI and OpenAI-compatible servers: chat completions (streamed or not) and embeddings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import SecretStr

from anygate.broker import ClaimedJob
from anygate.broker.errors import UpstreamRejectedError, UpstreamTransientError
from anygate.workers.adapters.base import CallOutcome, ChunkSink
from anygate.workers.adapters.http import json_object
from anygate.workers.adapters.upstream import UpstreamClient
from anygate.workers.assemble import assemble_chat_completion

SERVED = frozenset({"/v1/chat/completions", "/v1/embeddings"})
"""The job endpoints an OpenAI API has. Gemini's ``:countTokens`` is not one: the planner never
routes it here, and a job that still arrives (its plan's provider changed kind in a reload)
fails as rejected rather than reaching a URL that does not exist."""


class OpenAIAdapter:
    def __init__(self, base_url: str, api_key: SecretStr | None, client: UpstreamClient) -> None:
        self._base_url = base_url.rstrip("/")
        self._client = client
        self._headers = {"content-type": "application/json"}
        if api_key is not None:
            self._headers["authorization"] = f"Bearer {api_key.get_secret_value()}"

    async def aclose(self) -> None:
        await self._client.aclose()

    async def call(
        self,
        job: ClaimedJob,
        upstream_model: str,
        on_chunk: ChunkSink,
        api_key: str | None = None,
    ) -> CallOutcome:
        if job.endpoint not in SERVED:
            raise UpstreamRejectedError(
                f"{job.endpoint} is not served by OpenAI", code="endpoint_not_served"
            )
        body: dict[str, Any] = orjson.loads(job.body)
        body["model"] = upstream_model
        url = self._base_url + job.endpoint.removeprefix("/v1")
        headers = self._headers
        if api_key is not None:
            headers = {**headers, "authorization": f"Bearer {api_key}"}
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
