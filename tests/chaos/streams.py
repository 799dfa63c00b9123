"""Clients that read streams: OpenAI-surface chat through the SDK, Gemini-surface chat over
SSE with httpx, and the native job event stream (``/v1/jobs/{id}/events``) followed across
reconnects with ``Last-Event-ID``. Some hang up mid-stream on purpose.

Each keeps, besides the journal's call record, a ``Stream``: the text it assembled and how the
stream ended, which the reconciliation holds against what the mock answered.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import openai
import orjson
from httpx_sse import EventSource

from tests.chaos.calls import (
    WAIT_TIMEOUT_S,
    Client,
    expected_text,
    note_exception,
    note_response,
    submit,
)
from tests.chaos.journal import Call, Journal, Stream
from tests.chaos.settings import CHAT_MODELS, GEMINI_CHAT

HANG_UP_SHARE = 0.15
"""Share of streamed calls whose client disconnects after the first chunk."""
SSE_READ_TIMEOUT = httpx.Timeout(WAIT_TIMEOUT_S, connect=2.0, read=25.0)
"""The job SSE sends a keep-alive while it waits, so a read this long means it stopped."""
TERMINAL_EVENTS = frozenset({"completed", "failed", "cancelled", "expired"})


async def openai_stream(client: Client, sdk: openai.AsyncOpenAI) -> None:
    prompt = client.prompt("stream")
    seen = Stream("openai", prompt, expected_text(prompt))
    client.journal.streams.append(seen)
    call = client.journal.call("openai_stream", client.api)
    hang_up = client.rng.random() < HANG_UP_SHARE
    try:
        async with sdk.chat.completions.with_streaming_response.create(
            model=client.rng.choice(CHAT_MODELS),
            stream=True,
            messages=[{"role": "user", "content": prompt}],
        ) as response:
            note_response(call, response, client.journal)
            seen.job_id = call.job_id
            finished = False
            async for chunk in await response.parse():
                for choice in chunk.choices:
                    seen.text += choice.delta.content or ""
                    finished = finished or choice.finish_reason is not None
                if hang_up and seen.text:
                    seen.left_early, call.outcome = True, "left"
                    break
            seen.complete = finished and not seen.left_early
    except openai.APIStatusError as exc:
        note_response(call, exc.response, client.journal)
        seen.interrupted = f"HTTP {exc.status_code}"
    except Exception as exc:
        note_exception(call, exc)
        seen.interrupted = call.detail
    finally:
        seen.raw_text = seen.text
        call.ended = time.time()


def _gemini_text(frame: dict[str, Any]) -> tuple[str, bool]:
    text, finished = "", False
    for candidate in frame.get("candidates") or []:
        for part in (candidate.get("content") or {}).get("parts") or []:
            text += part.get("text") or ""
        finished = finished or bool(candidate.get("finishReason"))
    return text, finished


async def gemini_stream(client: Client, http: httpx.AsyncClient) -> None:
    prompt = client.prompt("gemini")
    seen = Stream("gemini", prompt, expected_text(prompt))
    client.journal.streams.append(seen)
    call = client.journal.call("gemini_stream", client.api)
    model = client.rng.choice([GEMINI_CHAT, *CHAT_MODELS])
    body = {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}
    hang_up = client.rng.random() < HANG_UP_SHARE
    try:
        async with http.stream(
            "POST",
            f"/v1beta/models/{model}:streamGenerateContent",
            params={"alt": "sse"},
            json=body,
            headers={"x-goog-api-key": client.key},
            timeout=httpx.Timeout(WAIT_TIMEOUT_S, connect=2.0),
        ) as response:
            if response.status_code != 200:
                await response.aread()
                note_response(call, response, client.journal)
                seen.interrupted = f"HTTP {response.status_code}"
                return
            note_response(call, response, client.journal)
            seen.job_id = call.job_id
            finished = False
            async for sse in EventSource(response).aiter_sse():
                frame = orjson.loads(sse.data)
                if "error" in frame:
                    seen.interrupted = str(frame["error"].get("message"))[:200]
                    call.outcome = "stream_error"
                    break
                text, done = _gemini_text(frame)
                seen.text += text
                finished = finished or done
                if hang_up and seen.text:
                    seen.left_early, call.outcome = True, "left"
                    break
            seen.complete = finished and seen.interrupted is None and not seen.left_early
    except Exception as exc:
        note_exception(call, exc)
        seen.interrupted = call.detail
    finally:
        seen.raw_text = seen.text
        call.ended = time.time()


def _chunk_text(data: str) -> str:
    chunk = orjson.loads(data)
    return "".join((c.get("delta") or {}).get("content") or "" for c in chunk.get("choices") or [])


def take_event(seen: Stream, event_id: str, kind: str, data: str) -> bool:
    """Fold one job event into what the reader holds; True when it ends the job. A ``retry``
    means "discard what you have": the next attempt streams the answer from its start."""
    seen.event_ids.append(event_id)
    seen.event_types.append(kind)
    if kind == "chunk":
        piece = _chunk_text(data)
        seen.text += piece
        seen.raw_text += piece
    elif kind == "retry":
        seen.retries_seen += 1
        seen.text = ""
    elif kind == "completed":
        seen.complete = True
    elif kind in TERMINAL_EVENTS:
        seen.interrupted = kind
    return kind in TERMINAL_EVENTS


async def job_sse(client: Client, http: httpx.AsyncClient) -> None:
    """Submit a streamed chat job and follow its events to the end, hanging up once on purpose
    after a few events and reconnecting (``Last-Event-ID``) after every interruption."""
    prompt = client.prompt("sse")
    spec = {
        "endpoint": "/v1/chat/completions",
        "body": {
            "model": client.rng.choice(CHAT_MODELS),
            "messages": [{"role": "user", "content": prompt}],
        },
    }
    job_id = await submit(client, http, spec)
    if job_id is None:
        return
    seen = Stream("job_sse", prompt, expected_text(prompt), job_id=job_id)
    client.journal.streams.append(seen)
    hang_up_after = client.rng.choice([0, 2, 3, 5])
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while time.monotonic() < deadline:
        call = client.journal.call("job_sse", client.api)
        call.job_id = job_id
        headers = {"last-event-id": seen.event_ids[-1]} if seen.event_ids else {}
        try:
            if await _follow(http, client.journal, call, seen, headers, hang_up_after):
                return
        finally:
            call.ended = time.time()
        hang_up_after = 0
        seen.reconnects += 1
        await asyncio.sleep(0.3)
    seen.interrupted = seen.interrupted or "gave up"


async def _follow(
    http: httpx.AsyncClient,
    journal: Journal,
    call: Call,
    seen: Stream,
    headers: dict[str, str],
    hang_up: int,
) -> bool:
    """One connection to the job's event stream; True once the job's end was read."""
    url = f"/v1/jobs/{seen.job_id}/events"
    try:
        async with http.stream("GET", url, headers=headers, timeout=SSE_READ_TIMEOUT) as response:
            if response.status_code != 200:
                await response.aread()
                note_response(call, response, journal)
                return response.status_code == 404  # expired: nothing more to read
            call.status = 200
            count = 0
            async for sse in EventSource(response).aiter_sse():
                if take_event(seen, sse.id, sse.event, sse.data):
                    return True
                count += 1
                if hang_up and count >= hang_up:
                    call.outcome = "left"
                    return False
    except Exception as exc:
        note_exception(call, exc)
    return False
