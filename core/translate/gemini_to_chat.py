"""Gemini ``GenerateContentResponse`` (whole or streamed) → OpenAI ``chat.completion``/chunks.

Both paths build choices from the same helpers, so a streamed answer folded by
``assemble_chat_completion`` equals the unary answer field for field (ids included: a function
call without Gemini's own id gets one derived from the response id, its candidate and its
position among that candidate's calls, which streaming does not change).

Thought-summary parts (``thought: true``) are not answer text and are left out; they only
appear when ``includeThoughts`` is asked for, which no translated request does. Thought
signatures on function calls travel as ``extra_content.google.thought_signature``, where
Google's OpenAI-compatible endpoint puts them, so a client echoing its history sends them back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from anygate.core.translate.common import call_digest_args, dumps, synthetic_call_id
from anygate.core.translate.finish import openai_finish_reason
from anygate.core.translate.usage import gemini_usage_to_openai


def _candidates(resp: Mapping[str, Any]) -> list[tuple[int, Mapping[str, Any]]]:
    found = []
    for position, candidate in enumerate(resp.get("candidates") or ()):
        if isinstance(candidate, Mapping):
            index = candidate.get("index")
            found.append((index if isinstance(index, int) else position, candidate))
    return found


def _parts(candidate: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, Mapping) else None
    return [part for part in parts or () if isinstance(part, Mapping)]


def _text(parts: list[Mapping[str, Any]]) -> str:
    return "".join(
        str(part["text"])
        for part in parts
        if isinstance(part.get("text"), str) and not part.get("thought")
    )


def _tool_call(
    part: Mapping[str, Any], *, response_id: str, candidate: int, ordinal: int
) -> dict[str, Any]:
    call = part["functionCall"]
    name = str(call.get("name") or "")
    args = call.get("args")
    args = args if isinstance(args, Mapping) else {}
    call_id = call.get("id") or synthetic_call_id(
        response_id, candidate, ordinal, name, call_digest_args(args)
    )
    tool_call: dict[str, Any] = {
        "id": str(call_id),
        "type": "function",
        "function": {"name": name, "arguments": dumps(args)},
    }
    signature = part.get("thoughtSignature")
    if isinstance(signature, str) and signature:
        tool_call["extra_content"] = {"google": {"thought_signature": signature}}
    return tool_call


def _is_call(part: Mapping[str, Any]) -> bool:
    return isinstance(part.get("functionCall"), Mapping)


def _blocked(resp: Mapping[str, Any]) -> bool:
    feedback = resp.get("promptFeedback")
    return isinstance(feedback, Mapping) and bool(feedback.get("blockReason"))


def gemini_response_to_chat(
    resp: Mapping[str, Any], *, model: str, response_id: str, created: int
) -> dict[str, Any]:
    """A whole response; a prompt Gemini blocked becomes one ``content_filter`` choice."""
    choices: list[dict[str, Any]] = []
    for index, candidate in _candidates(resp):
        parts = _parts(candidate)
        calls = [
            _tool_call(part, response_id=response_id, candidate=index, ordinal=ordinal)
            for ordinal, part in enumerate(part for part in parts if _is_call(part))
        ]
        message: dict[str, Any] = {"role": "assistant", "content": _text(parts) or None}
        if calls:
            message["tool_calls"] = calls
        reason = str(candidate.get("finishReason") or "STOP")
        choices.append(
            {
                "index": index,
                "message": message,
                "finish_reason": openai_finish_reason(reason, has_tool_calls=bool(calls)),
                "logprobs": None,
            }
        )
    if not choices and _blocked(resp):
        choices.append(
            {
                "index": 0,
                "message": {"role": "assistant", "content": None},
                "finish_reason": "content_filter",
                "logprobs": None,
            }
        )
    choices.sort(key=lambda choice: int(choice["index"]))
    return {
        "id": response_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": gemini_usage_to_openai(resp.get("usageMetadata")),
    }


class GeminiStreamToChat:
    """One streamed call: turns each Gemini event into the OpenAI chunks it amounts to.

    Gemini streams cumulative usage on its events; OpenAI sends usage once, in a final chunk with
    no choices, which ``close`` returns.
    """

    def __init__(self, *, model: str, response_id: str, created: int) -> None:
        self._model = model
        self._id = response_id
        self._created = created
        self._seen: set[int] = set()
        self._done: set[int] = set()
        self._calls: dict[int, int] = {}
        self._usage: Mapping[str, Any] | None = None
        self._blocked = False

    @property
    def finished(self) -> bool:
        """Every candidate that started has a finish reason (or the prompt was blocked)."""
        return self._blocked or (bool(self._seen) and self._seen <= self._done)

    def _chunk(self, index: int, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [
                {"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}
            ],
        }

    def feed(self, chunk: Mapping[str, Any]) -> list[dict[str, Any]]:
        usage = chunk.get("usageMetadata")
        if isinstance(usage, Mapping):
            self._usage = usage
        out: list[dict[str, Any]] = []
        candidates = _candidates(chunk)
        if not candidates and _blocked(chunk) and not self._blocked:
            self._blocked = True
            out.append(self._chunk(0, {"role": "assistant"}, "content_filter"))
        for index, candidate in candidates:
            if index in self._done:
                continue
            out.extend(self._candidate(index, candidate))
        return out

    def _candidate(self, index: int, candidate: Mapping[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        delta: dict[str, Any] = {}
        if index not in self._seen:
            self._seen.add(index)
            delta["role"] = "assistant"
        parts = _parts(candidate)
        text = _text(parts)
        if text:
            delta["content"] = text
        calls = []
        for part in parts:
            if _is_call(part):
                ordinal = self._calls.get(index, 0)
                self._calls[index] = ordinal + 1
                call = _tool_call(part, response_id=self._id, candidate=index, ordinal=ordinal)
                calls.append({"index": ordinal, **call})
        if calls:
            delta["tool_calls"] = calls
        if delta:
            out.append(self._chunk(index, delta, None))
        reason = candidate.get("finishReason")
        if reason:
            self._done.add(index)
            has_calls = self._calls.get(index, 0) > 0
            out.append(
                self._chunk(index, {}, openai_finish_reason(str(reason), has_tool_calls=has_calls))
            )
        return out

    def close(self) -> list[dict[str, Any]]:
        return [
            {
                "id": self._id,
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": self._model,
                "choices": [],
                "usage": gemini_usage_to_openai(self._usage),
            }
        ]
