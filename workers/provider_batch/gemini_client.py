"""Gemini's batch mode, as the control plane uses it: create a batch of inlined requests, follow
its long-running operation, read its inlined responses (or its results file), cancel it, and
delete it.

The REST resource is an operation: ``name`` (``batches/…``) and ``metadata`` holding the batch
(``state`` ``BATCH_STATE_*``, ``output`` with ``inlinedResponses`` or ``responsesFile``), which
is where google-genai reads it from too. Errors and transport failures are classified as the
live adapter's are.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from anygate.broker.errors import UpstreamError
from anygate.workers.adapters.auth import Auth, json_headers
from anygate.workers.adapters.targets import gemini_model_path
from anygate.workers.provider_batch.gemini_format import CHAT, inlined_request, read_responses
from anygate.workers.provider_batch.lines import BatchRequest, ReadBack, result_lines
from anygate.workers.provider_batch.provider_http import json_answer, provider_call
from anygate.workers.provider_batch.remote import RemoteBatch, RemoteState

_STATES = {
    "BATCH_STATE_PENDING": RemoteState.RUNNING,
    "BATCH_STATE_RUNNING": RemoteState.RUNNING,
    "BATCH_STATE_SUCCEEDED": RemoteState.DONE,
    "BATCH_STATE_FAILED": RemoteState.FAILED,
    "BATCH_STATE_EXPIRED": RemoteState.EXPIRED,
    "BATCH_STATE_CANCELLED": RemoteState.CANCELLED,
}


def _batch(operation: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = operation.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


def _output(operation: Mapping[str, Any]) -> Mapping[str, Any]:
    """The batch's output: in its metadata, or in the finished operation's ``response``."""
    for holder in (_batch(operation), operation.get("response")):
        if isinstance(holder, Mapping) and isinstance(holder.get("output"), Mapping):
            output: Mapping[str, Any] = holder["output"]
            return output
    response = operation.get("response")
    return response if isinstance(response, Mapping) else {}


def remote_batch(operation: Mapping[str, Any]) -> RemoteBatch:
    """An unknown state is running: the live cutoff still bounds the wait."""
    error = operation.get("error")
    message = error.get("message") if isinstance(error, Mapping) else None
    responses_file = _output(operation).get("responsesFile")
    return RemoteBatch(
        id=str(operation["name"]),
        state=_STATES.get(str(_batch(operation).get("state")), RemoteState.RUNNING),
        output_ref=responses_file if isinstance(responses_file, str) else None,
        message=str(message) if message else None,
    )


class GeminiBatchClient:
    def __init__(self, http: httpx.AsyncClient, root: str, auth: Auth) -> None:
        """``root``: the API's, with its version (``https://…/v1beta``: ``GeminiTarget.root``);
        ``auth``: the account's credentials (``adapters/targets.py``)."""
        self._http = http
        self._root = root.rstrip("/")
        parts = urlsplit(self._root)
        self._host = f"{parts.scheme}://{parts.netloc}"
        self._version = parts.path.rstrip("/").rsplit("/", 1)[-1]
        self._auth = auth

    def unfit(self, request: BatchRequest) -> UpstreamError | None:
        """A request Gemini cannot carry (a fallback may bring one the API did not check)."""
        try:
            inlined_request(request)
        except UpstreamError as exc:
            return exc
        return None

    async def _call(self, method: str, url: str, body: Any = None) -> httpx.Response:
        content = None if body is None else orjson.dumps(body)
        headers = await json_headers(self._auth, None)
        return await provider_call(self._http, method, url, headers, content=content)

    async def _json(self, method: str, url: str, body: Any = None) -> dict[str, Any]:
        return json_answer(await self._call(method, url, body))

    async def submit(
        self, upstream_model: str, endpoint: str, requests: Sequence[BatchRequest], label: str
    ) -> RemoteBatch:
        """``endpoint``: the jobs' (chat only: batch mode serves ``generateContent``);
        ``label``: the batch's display name."""
        if endpoint != CHAT:
            raise ValueError(f"Gemini's batch mode does not serve {endpoint}")
        lines = [inlined_request(r) for r in requests]
        body = {
            "batch": {
                "displayName": label,
                "inputConfig": {"requests": {"requests": lines}},
            }
        }
        url = f"{self._root}/{gemini_model_path(upstream_model)}:batchGenerateContent"
        return remote_batch(await self._json("POST", url, body))

    async def _operation(self, name: str) -> dict[str, Any]:
        return await self._json("GET", f"{self._root}/{name}")

    async def get(self, batch_id: str) -> RemoteBatch:
        return remote_batch(await self._operation(batch_id))

    async def cancel(self, batch_id: str) -> RemoteBatch:
        await self._call("POST", f"{self._root}/{batch_id}:cancel", {})
        return await self.get(batch_id)

    async def results(self, batch: RemoteBatch, job_ids: list[str]) -> ReadBack:
        """One result per job of the ended batch: its inlined responses, or its results file
        (JSONL, one ``{"key", "response"|"error"}`` per line)."""
        operation = await self._operation(batch.id)
        output = _output(operation)
        inlined = (output.get("inlinedResponses") or {}).get("inlinedResponses")
        items: list[Any] = []
        if isinstance(inlined, list):
            items = inlined
        elif isinstance(output.get("responsesFile"), str):
            url = f"{self._host}/download/{self._version}/{output['responsesFile']}:download"
            data = (await self._call("GET", url + "?alt=media")).content
            items = list(result_lines(data))
        model = str(_batch(operation).get("model") or "").removeprefix("models/")
        return read_responses(items, job_ids, model=model, created=int(time.time()))

    async def forget(self, batch: RemoteBatch) -> None:
        """Delete the ended batch and what it holds at the provider."""
        await self._call("DELETE", f"{self._root}/{batch.id}")
