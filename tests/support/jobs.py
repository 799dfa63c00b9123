"""A client's side of the native job API in end-to-end tests: a chat job, submitting it (202
with its Location), and reading its SSE event stream."""

from __future__ import annotations

from typing import Any

import httpx
from httpx_sse import aconnect_sse

CHAT = "/v1/chat/completions"
TERMINAL_EVENTS = frozenset({"completed", "failed", "cancelled", "expired"})


def chat_job(text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {
        "endpoint": CHAT,
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]},
        **extra,
    }


async def submit(client: httpx.AsyncClient, job: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await client.post("/v1/jobs", json=job or chat_job())
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/jobs/{response.json()['id']}"
    body: dict[str, Any] = response.json()
    return body


async def read_sse(
    client: httpx.AsyncClient,
    job_id: str,
    *,
    last_id: str | None = None,
    stop_after: int | None = None,
) -> list[tuple[str, str, str]]:
    """(id, event, data) triples, until a terminal event or ``stop_after`` events."""
    events: list[tuple[str, str, str]] = []
    headers = {"last-event-id": last_id} if last_id else {}
    async with aconnect_sse(client, "GET", f"/v1/jobs/{job_id}/events", headers=headers) as src:
        assert src.response.headers["x-accel-buffering"] == "no"
        async for sse in src.aiter_sse():
            events.append((sse.id, sse.event, sse.data))
            if sse.event in TERMINAL_EVENTS:
                break
            if stop_after is not None and len(events) >= stop_after:
                break
    return events
