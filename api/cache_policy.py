"""The response cache's decisions, free of I/O so each is unit-tested on its own
(docs/queue-semantics.md#cache).

Which mode a request is in (the model's opt-in and the ``x-anygate-cache`` header), whether
its answer may be cached at all, the entry's key, and the events a worker would have produced
for a cached completion: a streamed hit is replayed through the very renderers a live stream
goes through, so both surfaces end a replay exactly as they end a live answer.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from anygate.broker import JobEvent
from anygate.broker.errors import InvalidRequestError

HEADER = "x-anygate-cache"
CHAT = "/v1/chat/completions"
GLOBAL_SCOPE = "*"
"""The scope of ``cache.scope: global``; tenant ids cannot contain ``*``, so it never collides."""

IGNORED_FIELDS = frozenset({"stream", "stream_options", "user"})
"""Fields that change how an answer is delivered or attributed, not what it says."""

DEFAULT_TEMPERATURE = 1.0
"""What providers sample at when a request names no temperature."""


class CacheMode(enum.Enum):
    OFF = "off"
    """Neither read nor written: the model did not opt in, or the request said ``skip``."""
    USE = "use"
    """Answer from the cache when there is an entry, else call upstream and store the answer."""
    REFRESH = "refresh"
    """Call upstream whatever the cache holds, and replace the entry with the new answer."""


_HEADER_MODES = {"use": CacheMode.USE, "skip": CacheMode.OFF, "refresh": CacheMode.REFRESH}


def cache_mode(header: str | None, *, model_opted_in: bool) -> CacheMode:
    """The header wins over the model's setting; a value we do not know is refused rather
    than guessed at, so a typo cannot silently serve (or bypass) cached answers."""
    if header is None:
        return CacheMode.USE if model_opted_in else CacheMode.OFF
    mode = _HEADER_MODES.get(header.strip().lower())
    if mode is None:
        raise InvalidRequestError(
            f"{HEADER}: expected one of use, skip, refresh; got {header!r}", param=HEADER
        )
    return mode


def cacheable(endpoint: str, body: Mapping[str, Any], max_temperature: float | None) -> bool:
    """Answers sampled hotter than the operator allows are meant to vary: never cache them.
    Embeddings do not sample, so they are always deterministic enough."""
    if endpoint != CHAT or max_temperature is None:
        return True
    temperature = body.get("temperature")
    if temperature is None:
        temperature = DEFAULT_TEMPERATURE
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        return False
    return float(temperature) <= max_temperature


def cache_scope(tenant: str, scope: str) -> str:
    return GLOBAL_SCOPE if scope == "global" else tenant


def cache_digest(scope: str, endpoint: str, body: Mapping[str, Any]) -> str:
    """sha256 of the canonical request: keys sorted at every depth, delivery-only fields out,
    so field order and streaming never split one question into two entries, while the scope
    keeps one tenant's entries out of another's reach."""
    canonical = {k: v for k, v in body.items() if k not in IGNORED_FIELDS}
    encoded = orjson.dumps([scope, endpoint, canonical], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(encoded).hexdigest()


# --- replaying a cached completion as a stream ------------------------------------------------


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: only text travels in a stream delta
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, Mapping))
    return ""


def _tool_call_deltas(calls: Iterable[Any]) -> list[dict[str, Any]]:
    deltas = []
    for index, call in enumerate(calls):
        if not isinstance(call, Mapping):
            continue
        function = call.get("function") or {}
        delta: dict[str, Any] = {
            "index": index,
            "id": str(call.get("id") or ""),
            "type": str(call.get("type") or "function"),
            "function": {
                "name": str(function.get("name") or ""),
                "arguments": str(function.get("arguments") or ""),
            },
        }
        if call.get("extra_content") is not None:  # Gemini thought signatures
            delta["extra_content"] = call["extra_content"]
        deltas.append(delta)
    return deltas


def completion_chunks(completion: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk``s a worker relays for this completion: per choice a role
    chunk, the content (and refusal, tool calls) in one chunk, a finishing chunk; then the
    usage chunk. Folded by ``workers.assemble`` they give the completion back."""
    head: dict[str, Any] = {
        "id": completion.get("id") or "",
        "object": "chat.completion.chunk",
        "created": completion.get("created") or 0,
        "model": completion.get("model") or "",
    }
    for extra in ("system_fingerprint", "service_tier"):
        if completion.get(extra):
            head[extra] = completion[extra]

    def chunk(index: int, delta: dict[str, Any], finish: Any = None, **more: Any) -> dict[str, Any]:
        choice = {"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}
        return {**head, "choices": [{**choice, **more}]}

    chunks = []
    for position, choice in enumerate(completion.get("choices") or ()):
        if not isinstance(choice, Mapping):
            continue
        index = int(choice.get("index", position))
        message = choice.get("message") or {}
        text = _text(message.get("content"))
        role = str(message.get("role") or "assistant")
        # As OpenAI streams: "" opens a text answer, null one that only calls tools or refuses.
        chunks.append(chunk(index, {"role": role, "content": "" if text else None}))
        body: dict[str, Any] = {}
        if text:
            body["content"] = text
        if message.get("refusal"):
            body["refusal"] = str(message["refusal"])
        calls = _tool_call_deltas(message.get("tool_calls") or ())
        if calls:
            body["tool_calls"] = calls
        if body or choice.get("logprobs"):
            chunks.append(chunk(index, body, logprobs=choice.get("logprobs")))
        chunks.append(chunk(index, {}, choice.get("finish_reason") or "stop"))
    if completion.get("usage") is not None:
        chunks.append({**head, "choices": [], "usage": completion["usage"]})
    return chunks


def replay_events(completion: Mapping[str, Any]) -> list[JobEvent]:
    """The chunk events and the ``completed`` event a live streamed job would have sent."""
    events = [
        JobEvent(f"0-{n}", "chunk", orjson.dumps(c).decode())
        for n, c in enumerate(completion_chunks(completion), start=2)
    ]
    done = {
        "id": completion.get("id"),
        "status": "succeeded",
        "result": completion,
        "error": None,
        "usage": completion.get("usage"),
    }
    events.append(JobEvent(f"0-{len(events) + 2}", "completed", orjson.dumps(done).decode()))
    return events


Render = Callable[[JobEvent], tuple[list[bytes], bool | None]]
"""As ``api.sync_call.Render``: one event in, the bytes to send and whether the stream ends."""


def replay(events: Iterable[JobEvent], render: Render, tail: Callable[[], bytes] | None) -> bytes:
    """A whole replayed stream: every event through a surface's live renderer, then its tail."""
    out: list[bytes] = []
    for event in events:
        pieces, end = render(event)
        out += pieces
        if end is not None:
            break
    if tail is not None:
        out.append(tail())
    return b"".join(out)
