"""An OpenAI ``chat.completion`` (whole or streamed) → Gemini ``GenerateContentResponse``.

Gemini streams a function call whole, so streamed tool-call fragments are held until the call
is complete: when the next call of the same choice starts, when the choice finishes, or at the
end of the stream. The finishing candidate is held for one more chunk so the usage chunk that
follows it in an OpenAI stream lands on the same Gemini chunk, as Gemini sends its usage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from anygate.core.translate.common import json_object
from anygate.core.translate.finish import gemini_finish_reason
from anygate.core.translate.usage import openai_usage_to_gemini

_RAW_ARGUMENTS = "_unparsed_arguments"


def _args(arguments: str) -> dict[str, Any]:
    """A model can emit arguments that are not a JSON object; the text is kept, not lost."""
    if not arguments.strip():
        return {}
    parsed = json_object(arguments)
    return parsed if parsed is not None else {_RAW_ARGUMENTS: arguments}


def _call_part(call_id: str, name: str, arguments: str, extra: Any) -> dict[str, Any]:
    call: dict[str, Any] = {"name": name, "args": _args(arguments)}
    if call_id:
        call["id"] = call_id
    part: dict[str, Any] = {"functionCall": call}
    google = extra.get("google") if isinstance(extra, Mapping) else None
    signature = google.get("thought_signature") if isinstance(google, Mapping) else None
    if isinstance(signature, str) and signature:
        part["thoughtSignature"] = signature
    return part


def _message_parts(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    content = message.get("content")
    if isinstance(content, str) and content:
        parts.append({"text": content})
    elif isinstance(content, list):
        parts.extend(
            {"text": str(item.get("text") or item.get("refusal") or "")}
            for item in content
            if isinstance(item, Mapping)
        )
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        parts.append({"text": refusal})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        parts.append(
            _call_part(
                str(call.get("id") or ""),
                str(function.get("name") or ""),
                str(function.get("arguments") or ""),
                call.get("extra_content"),
            )
        )
    return parts


def _candidate(index: int, parts: list[dict[str, Any]], finish: str | None) -> dict[str, Any]:
    candidate: dict[str, Any] = {}
    if parts or finish != "SAFETY":
        candidate["content"] = {"role": "model", "parts": parts or [{"text": ""}]}
    if finish is not None:
        candidate["finishReason"] = finish
    candidate["index"] = index
    return candidate


def chat_response_to_gemini(resp: Mapping[str, Any]) -> dict[str, Any]:
    candidates = []
    for position, choice in enumerate(resp.get("choices") or ()):
        index = int(choice.get("index", position))
        reason = choice.get("finish_reason")
        finish = gemini_finish_reason(reason) if reason else None
        candidates.append(_candidate(index, _message_parts(choice.get("message") or {}), finish))
    out: dict[str, Any] = {
        "candidates": candidates,
        "usageMetadata": openai_usage_to_gemini(resp.get("usage")),
        "modelVersion": str(resp.get("model") or ""),
    }
    if resp.get("id"):
        out["responseId"] = str(resp["id"])
    return out


@dataclass(slots=True)
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: str = ""
    extra: Any = None


@dataclass(slots=True)
class _Choice:
    calls: dict[int, _PendingCall] = field(default_factory=dict)


class ChatStreamToGemini:
    """One streamed answer: OpenAI chunks in, Gemini stream chunks out, in order."""

    def __init__(self) -> None:
        self._choices: dict[int, _Choice] = {}
        self._held: dict[str, Any] | None = None
        self._model = ""
        self._id = ""

    def _envelope(self, candidates: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {"candidates": candidates, "modelVersion": self._model}
        if self._id:
            out["responseId"] = self._id
        return out

    def _flush_calls(self, choice: _Choice, below: int | None = None) -> list[dict[str, Any]]:
        ready = sorted(i for i in choice.calls if below is None or i < below)
        parts = []
        for i in ready:
            call = choice.calls.pop(i)
            parts.append(_call_part(call.id, call.name, call.arguments, call.extra))
        return parts

    def _merge_calls(self, choice: _Choice, deltas: list[Any]) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        for delta in deltas:
            if not isinstance(delta, Mapping):
                continue
            index = int(delta.get("index", len(choice.calls)))
            parts.extend(self._flush_calls(choice, below=index))
            call = choice.calls.setdefault(index, _PendingCall())
            call.id = call.id or str(delta.get("id") or "")
            function = delta.get("function") or {}
            call.name += str(function.get("name") or "")
            call.arguments += str(function.get("arguments") or "")
            if delta.get("extra_content") is not None:
                call.extra = delta["extra_content"]
        return parts

    def feed(self, chunk: Mapping[str, Any]) -> list[dict[str, Any]]:
        self._model = str(chunk.get("model") or self._model)
        self._id = str(chunk.get("id") or self._id)
        out: list[dict[str, Any]] = []
        usage = chunk.get("usage")
        choices = [c for c in chunk.get("choices") or () if isinstance(c, Mapping)]
        if self._held is not None and (choices or usage):
            held, self._held = self._held, None
            if usage and not choices:
                held["usageMetadata"] = openai_usage_to_gemini(usage)
                return [held]
            out.append(held)
        for choice in choices:
            out.extend(self._choice(choice))
        if usage and not choices:
            out.append({**self._envelope([]), "usageMetadata": openai_usage_to_gemini(usage)})
        return out

    def _choice(self, raw: Mapping[str, Any]) -> list[dict[str, Any]]:
        index = int(raw.get("index", 0))
        choice = self._choices.setdefault(index, _Choice())
        delta = raw.get("delta") or {}
        parts: list[dict[str, Any]] = []
        for key in ("content", "refusal"):
            text = delta.get(key)
            if isinstance(text, str) and text:
                parts.append({"text": text})
        parts.extend(self._merge_calls(choice, list(delta.get("tool_calls") or ())))
        reason = raw.get("finish_reason")
        if not reason:
            return [self._envelope([_candidate(index, parts, None)])] if parts else []
        parts.extend(self._flush_calls(choice))
        finishing = self._envelope([_candidate(index, parts, gemini_finish_reason(reason))])
        self._held = finishing
        return []

    def close(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self._held is not None:
            out.append(self._held)
            self._held = None
        for index, choice in sorted(self._choices.items()):
            parts = self._flush_calls(choice)
            if parts:
                out.append(self._envelope([_candidate(index, parts, None)]))
        return out
