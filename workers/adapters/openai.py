"""OpenAI and OpenAI-compatible servers: chat completions (streamed or not) and embeddings."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
from httpx_sse import SSEError, aconnect_sse
from pydantic import SecretStr

from anygate.broker import ClaimedJob
from anygate.broker.errors import UpstreamRejectedError, UpstreamTransientError
from anygate.workers.adapters.base import CallOutcome, ChunkSink
from anygate.workers.adapters.http import error_for_exception, error_for_status
from anygate.workers.assemble import assemble_chat_completion


class OpenAIAdapter:
    def __init__(self, base_url: str, api_key: SecretStr | None, client: httpx.AsyncClient) -> None:
        self._base_url = base_url.rstrip("/")
        self._client = client
        self._headers = {"content-type": "application/json"}
        if api_key is not None:
            self._headers["authorization"] = f"Bearer {api_key.get_secret_value()}"

    async def aclose(self) -> None:
        await self._client.aclose()

    async def call(self, job: ClaimedJob, upstream_model: str, on_chunk: ChunkSink) -> CallOutcome:
        body: dict[str, Any] = orjson.loads(job.body)
        body["model"] = upstream_model
        url = self._base_url + job.endpoint.removeprefix("/v1")
        try:
            if job.endpoint == "/v1/chat/completions" and job.stream:
                return await self._stream_chat(url, body, on_chunk)
            return await self._post(url, body)
        except httpx.HTTPError as exc:
            raise error_for_exception(exc) from None

    async def _post(self, url: str, body: dict[str, Any]) -> CallOutcome:
        response = await self._client.post(url, content=orjson.dumps(body), headers=self._headers)
        if response.status_code != 200:
            raise error_for_status(response.status_code, response.content, response.headers)
        try:
            result = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise UpstreamTransientError("upstream sent a body that is not JSON") from None
        if not isinstance(result, dict):
            raise UpstreamRejectedError("upstream sent an unexpected JSON body")
        return CallOutcome(result, result.get("usage"))

    async def _stream_chat(
        self, url: str, body: dict[str, Any], on_chunk: ChunkSink
    ) -> CallOutcome:
        body["stream"] = True
        options = dict(body.get("stream_options") or {})
        options["include_usage"] = True
        body["stream_options"] = options
        chunks: list[dict[str, Any]] = []
        finished = False
        async with aconnect_sse(
            self._client, "POST", url, content=orjson.dumps(body), headers=self._headers
        ) as source:
            response = source.response
            if response.status_code != 200:
                await response.aread()
                raise error_for_status(response.status_code, response.content, response.headers)
            try:
                async for event in source.aiter_sse():
                    if event.data == "[DONE]":
                        finished = True
                        break
                    try:
                        chunk = orjson.loads(event.data)
                    except orjson.JSONDecodeError:
                        raise UpstreamTransientError(
                            "upstream sent a malformed stream chunk", code="malformed_chunk"
                        ) from None
                    if isinstance(chunk, dict) and "error" in chunk:
                        msg = (chunk.get("error") or {}).get("message") or "upstream stream error"
                        raise UpstreamTransientError(str(msg), code="upstream_stream_error")
                    chunks.append(chunk)
                    await on_chunk(event.data.encode())
            except SSEError as exc:
                raise UpstreamTransientError(f"upstream stream broke: {exc}") from None
        if not finished:
            raise UpstreamTransientError(
                "upstream stream ended before [DONE]", code="incomplete_stream"
            )
        result = assemble_chat_completion(chunks)
        return CallOutcome(result, result.get("usage"))
