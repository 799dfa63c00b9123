"""A small async client for the native job API (docs/api.md#native-job-api); needs nothing but
httpx."""

from __future__ import annotations

import json
import ssl
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

    @property
    def attempt(self) -> int | None:
        """The delivery a ``chunk`` (or ``started``, ``retry``, outcome) belongs to."""
        value = self.data.get("attempt")
        return value if isinstance(value, int) else None


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of a streamed answer's text. ``restart``: a new attempt began (the worker that
    was streaming died, or the call was retried): throw away the text received so far before
    appending ``text``."""

    text: str
    restart: bool = False


class AnswerText:
    """Folds a chat job's events into its answer's text, as the job API asks: a ``retry`` event
    voids what earlier attempts sent, so chunks of two attempts are never joined."""

    def __init__(self) -> None:
        self.text = ""
        self._restart = False

    def feed(self, event: JobEvent) -> TextDelta | None:
        """The text this event adds (None when it adds none)."""
        if event.type == "retry":
            self.text, self._restart = "", bool(self.text) or self._restart
            return None
        if event.type != "chunk":
            return None
        piece = "".join(
            choice.get("delta", {}).get("content") or ""
            for choice in event.data.get("choices") or []
            if isinstance(choice, dict) and choice.get("index", 0) == 0
        )
        if not piece and not self._restart:
            return None
        delta = TextDelta(piece, restart=self._restart)
        self.text += piece
        self._restart = False
        return delta


class AnygateClient:
    """``async with AnygateClient("http://127.0.0.1:8080", "sk-…") as ag: await ag.submit(...)``.

    Over HTTPS with a private CA or mutual TLS (docs/tls.md), pass ``verify``: an
    ``ssl.SSLContext`` that trusts the gateway's CA and, for mutual TLS, holds the client's
    certificate (``load_cert_chain``)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 75.0,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"authorization": f"Bearer {api_key}"},
            timeout=timeout,
            verify=verify,
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
                if not sse.data:
                    continue  # not an event of the job (some SSE parsers make one of a blank line)
                event = JobEvent(sse.id, sse.event, json.loads(sse.data))
                yield event
                if event.type in TERMINAL_EVENTS:
                    return

    async def stream_text(
        self, job_id: str, *, last_event_id: str | None = None
    ) -> AsyncIterator[TextDelta]:
        """A chat job's answer as it streams: each delta in order; one with ``restart`` set
        means "discard what you have" (a new attempt began)."""
        answer = AnswerText()
        async for event in self.events(job_id, last_event_id=last_event_id):
            delta = answer.feed(event)
            if delta is not None:
                yield delta
