"""A small async client for the native job API (SPEC §1.3); needs nothing but httpx."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx

from anygate.client._errors import AnygateClientError

TERMINAL = frozenset({"succeeded", "failed", "cancelled", "expired"})
TERMINAL_EVENTS = frozenset({"completed", "failed", "cancelled", "expired"})


@dataclass(frozen=True, slots=True)
class JobEvent:
    id: str
    type: str
    data: dict[str, Any]


class AnygateClient:
    """``async with AnygateClient("http://127.0.0.1:8080", "sk-…") as ag: await ag.submit(...)``."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 75.0) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"authorization": f"Bearer {api_key}"},
            timeout=timeout,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @staticmethod
    def _check(response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 400:
            raise AnygateClientError(
                response.status_code, body, response.headers.get("x-request-id")
            )
        return dict(body)

    async def submit(
        self,
        endpoint: str,
        body: dict[str, Any],
        *,
        priority: str | None = None,
        metadata: dict[str, str] | None = None,
        deadline: float | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"endpoint": endpoint, "body": body}
        if priority is not None:
            payload["priority"] = priority
        if metadata is not None:
            payload["metadata"] = metadata
        if deadline is not None:
            payload["deadline"] = deadline
        headers = {"idempotency-key": idempotency_key} if idempotency_key else None
        return self._check(await self._http.post("/v1/jobs", json=payload, headers=headers))

    async def get(self, job_id: str, *, wait: float | None = None) -> dict[str, Any]:
        params = {"wait": wait} if wait else None
        return self._check(await self._http.get(f"/v1/jobs/{job_id}", params=params))

    async def wait(
        self, job_id: str, *, max_wait: float = 300.0, poll: float = 60.0
    ) -> dict[str, Any]:
        """Long-poll until the job is terminal or ``max_wait`` passes; returns the last state."""
        loop_budget = max_wait
        job = await self.get(job_id)
        while job["status"] not in TERMINAL and loop_budget > 0:
            step = min(poll, loop_budget)
            job = await self.get(job_id, wait=step)
            loop_budget -= step
        return job

    async def cancel(self, job_id: str) -> dict[str, Any]:
        return self._check(await self._http.post(f"/v1/jobs/{job_id}/cancel"))

    async def list(
        self, *, status: str | None = None, limit: int = 20, after: str | None = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        if after:
            params["after"] = after
        return self._check(await self._http.get("/v1/jobs", params=params))

    async def events(
        self, job_id: str, *, last_event_id: str | None = None
    ) -> AsyncIterator[JobEvent]:
        """Follow a job's events until a terminal one; resume with ``last_event_id``."""
        from httpx_sse import aconnect_sse  # noqa: PLC0415 - optional: only events() needs it

        headers = {"last-event-id": last_event_id} if last_event_id else {}
        async with aconnect_sse(
            self._http, "GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=None
        ) as source:
            if source.response.status_code >= 400:
                await source.response.aread()
                self._check(source.response)
            async for sse in source.aiter_sse():
                event = JobEvent(sse.id, sse.event, json.loads(sse.data) if sse.data else {})
                yield event
                if event.type in TERMINAL_EVENTS:
                    return
