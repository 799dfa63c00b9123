"""OpenAI's Batch API, as the control plane uses it: upload the lines as a ``batch`` file, create
the batch, follow it, read its output and error files, cancel it, and delete what it left.

On httpx, like the control plane's webhooks: these are a few calls per batch of thousands of
jobs, far from the worker's per-call hot path (``adapters/upstream.py``). Errors are the workers'
``Upstream*Error`` family, classified by status as a live call's are; a transport failure is
transient and never shows the request (its headers carry the key).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from anygate.broker.errors import UpstreamError
from anygate.workers.adapters.auth import Auth
from anygate.workers.provider_batch.lines import BatchRequest, ReadBack
from anygate.workers.provider_batch.openai_format import input_file, read_results
from anygate.workers.provider_batch.provider_http import json_answer, provider_call
from anygate.workers.provider_batch.remote import RemoteBatch, RemoteState

COMPLETION_WINDOW = "24h"
"""The only window OpenAI offers."""

_STATES = {
    "validating": RemoteState.RUNNING,
    "in_progress": RemoteState.RUNNING,
    "finalizing": RemoteState.RUNNING,
    "completed": RemoteState.DONE,
    "failed": RemoteState.FAILED,
    "expired": RemoteState.EXPIRED,
    "cancelling": RemoteState.CANCELLING,
    "cancelled": RemoteState.CANCELLED,
}


def remote_batch(batch: Mapping[str, Any]) -> RemoteBatch:
    """OpenAI's ``Batch`` object as the collector follows it; an unknown status is running
    (OpenAI may add a state; waiting on it is safe, the live cutoff still bounds the wait)."""
    errors = (batch.get("errors") or {}).get("data") or []
    message = "; ".join(
        f"{e.get('code')}: {e.get('message')}" + (f" (line {e['line']})" if e.get("line") else "")
        for e in errors
        if isinstance(e, dict)
    )
    return RemoteBatch(
        id=str(batch["id"]),
        state=_STATES.get(str(batch.get("status")), RemoteState.RUNNING),
        input_ref=batch.get("input_file_id"),
        output_ref=batch.get("output_file_id"),
        error_ref=batch.get("error_file_id"),
        message=message or None,
    )


class OpenAIBatchClient:
    def __init__(self, http: httpx.AsyncClient, base_url: str, auth: Auth) -> None:
        """``base_url``: the API root (``https://api.openai.com/v1``); ``auth``: the
        account's credentials (``adapters/targets.py``)."""
        self._http = http
        self._base = base_url.rstrip("/")
        self._auth = auth

    def unfit(self, request: BatchRequest) -> UpstreamError | None:
        """Every job the API accepted is a valid line: the body goes as it is."""
        return None

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = await self._auth.headers()
        return await provider_call(self._http, method, self._base + path, headers, **kwargs)

    async def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return json_answer(await self._call(method, path, **kwargs))

    async def submit(
        self, upstream_model: str, endpoint: str, requests: Sequence[BatchRequest], label: str
    ) -> RemoteBatch:
        """Upload the lines and create the batch (``label`` in its metadata); an input file
        whose batch could not be created is deleted again. Each line names its own model."""
        data = input_file(requests)
        files = {"file": ("anygate-batch.jsonl", data, "application/jsonl")}
        uploaded = await self._json("POST", "/files", data={"purpose": "batch"}, files=files)
        file_id = str(uploaded["id"])
        body = {
            "input_file_id": file_id,
            "endpoint": endpoint,
            "completion_window": COMPLETION_WINDOW,
            "metadata": {"anygate_batch": label},
        }
        try:
            return remote_batch(await self._json("POST", "/batches", json=body))
        except BaseException:
            with contextlib.suppress(UpstreamError):
                await self._call("DELETE", f"/files/{file_id}")
            raise

    async def get(self, batch_id: str) -> RemoteBatch:
        return remote_batch(await self._json("GET", f"/batches/{batch_id}"))

    async def cancel(self, batch_id: str) -> RemoteBatch:
        return remote_batch(await self._json("POST", f"/batches/{batch_id}/cancel"))

    async def _content(self, file_id: str | None) -> bytes:
        if not file_id:
            return b""
        return (await self._call("GET", f"/files/{file_id}/content")).content

    async def results(self, batch: RemoteBatch, job_ids: list[str]) -> ReadBack:
        """One result per job, from whatever files the ended batch has."""
        output = await self._content(batch.output_ref)
        errors = await self._content(batch.error_ref)
        return read_results(output, errors, job_ids)

    async def forget(self, batch: RemoteBatch) -> None:
        """Delete the batch's files at the provider (the prompts and answers it keeps); a file
        already gone is no error."""
        for file_id in (batch.input_ref, batch.output_ref, batch.error_ref):
            if file_id:
                try:
                    await self._call("DELETE", f"/files/{file_id}")
                except UpstreamError as exc:
                    if exc.upstream_status != 404:
                        raise
