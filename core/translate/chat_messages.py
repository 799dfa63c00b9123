"""OpenAI ``messages`` → Gemini ``contents`` and ``systemInstruction``.

Gemini keeps the system prompt outside the conversation, names the assistant ``model``, answers
function calls by function *name* rather than by call id, and wants all results of one step in
one turn; this module bridges exactly those differences and refuses anything it cannot carry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from anygate.core.translate.common import (
    Fields,
    image_type_from_url,
    is_http_url,
    json_object,
    parse_data_url,
)
from anygate.core.translate.errors import invalid, untranslatable

_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3"}
_FILE_TYPES = {"pdf": "application/pdf"}
_CACHE_HINT = "prompt_cache_breakpoint"
_PART_KEYS: dict[str, frozenset[str]] = {
    "text": frozenset({"type", "text", _CACHE_HINT}),
    "image_url": frozenset({"type", "image_url", _CACHE_HINT}),
    "input_audio": frozenset({"type", "input_audio", _CACHE_HINT}),
    "file": frozenset({"type", "file", _CACHE_HINT}),
    "refusal": frozenset({"type", "refusal"}),
}
_MESSAGE_KEYS: dict[str, frozenset[str]] = {
    "system": frozenset({"role", "content"}),
    "developer": frozenset({"role", "content"}),
    "user": frozenset({"role", "content"}),
    # annotations (url citations) describe an earlier answer; OpenAI's own responses carry them
    # and clients echo them back with the message, so they are accepted and not forwarded.
    "assistant": frozenset({"role", "content", "tool_calls", "refusal", "annotations"}),
    "tool": frozenset({"role", "content", "tool_call_id"}),
}
_MESSAGE_REFUSALS = {
    "name": "Gemini has no participant names",
    "audio": "earlier audio answers cannot be replayed to Gemini",
    "function_call": "the deprecated function_call is not translated; send tool_calls instead",
}


@dataclass(slots=True)
class Conversation:
    contents: list[dict[str, Any]] = field(default_factory=list)
    system: list[dict[str, Any]] = field(default_factory=list)
    image_details: list[tuple[str, str]] = field(default_factory=list)
    """(detail, param) of every image that asked for a detail other than ``auto``."""


def _text_parts(message: Fields, *, allow_refusal: bool) -> list[dict[str, Any]]:
    """Content that may only hold text (system, developer, tool, assistant)."""
    content = message.get("content")
    where = message.path("content")
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}]
    if not isinstance(content, list):
        raise invalid(where, "must be a string or an array of content parts")
    parts: list[dict[str, Any]] = []
    for index, raw in enumerate(content):
        part = Fields(raw, f"{where}[{index}]")
        kind = part.get("type")
        if kind == "text" or (allow_refusal and kind == "refusal"):
            part.reject_unknown(_PART_KEYS[kind], f"a {kind} part")
            text = part.string(kind)
            if text is None:
                raise invalid(part.path(kind), "is required")
            parts.append({"text": text})
        else:
            raise untranslatable(part.path("type"), f"a {kind!r} part is not allowed here")
    return parts


def _image_part(part: Fields, conversation: Conversation) -> dict[str, Any]:
    image = part.obj("image_url")
    if image is None:
        raise invalid(part.path("image_url"), "is required")
    image.reject_unknown(frozenset({"url", "detail"}), "a Gemini image part")
    url = image.string("url")
    if url is None:
        raise invalid(image.path("url"), "is required")
    detail = image.string("detail") or "auto"
    if detail not in {"auto", "low", "high"}:
        raise untranslatable(image.path("detail"), f"{detail!r} has no Gemini media resolution")
    if detail != "auto":
        conversation.image_details.append((detail, image.path("detail")))
    if url.startswith("data:"):
        mime, data = parse_data_url(url, image.path("url"))
        return {"inlineData": {"mimeType": mime, "data": data}}
    if is_http_url(url):
        return {"fileData": {"mimeType": image_type_from_url(url), "fileUri": url}}
    raise untranslatable(image.path("url"), "only data: and http(s) image URLs can be sent")


def _audio_part(part: Fields) -> dict[str, Any]:
    audio = part.obj("input_audio")
    if audio is None:
        raise invalid(part.path("input_audio"), "is required")
    audio.reject_unknown(frozenset({"data", "format"}), "a Gemini audio part")
    data, fmt = audio.string("data"), audio.string("format")
    if data is None:
        raise invalid(audio.path("data"), "is required")
    mime = _AUDIO_TYPES.get(fmt or "")
    if mime is None:
        raise untranslatable(audio.path("format"), f"{fmt!r} is not a known audio format")
    return {"inlineData": {"mimeType": mime, "data": data}}


def _file_part(part: Fields) -> dict[str, Any]:
    file = part.obj("file")
    if file is None:
        raise invalid(part.path("file"), "is required")
    file.reject_unknown(frozenset({"file_data", "file_id", "filename"}), "a Gemini file part")
    if "file_id" in file:
        raise untranslatable(file.path("file_id"), "OpenAI file ids cannot be read by Gemini")
    data = file.string("file_data")
    if data is None:
        raise invalid(file.path("file_data"), "is required")
    if data.startswith("data:"):
        mime, payload = parse_data_url(data, file.path("file_data"))
        return {"inlineData": {"mimeType": mime, "data": payload}}
    ext = (file.string("filename") or "").rpartition(".")[2].lower()
    if ext not in _FILE_TYPES:
        raise untranslatable(
            file.path("file_data"), "send a data: URL so the file's MIME type is known"
        )
    return {"inlineData": {"mimeType": _FILE_TYPES[ext], "data": data}}


def _user_parts(message: Fields, conversation: Conversation) -> list[dict[str, Any]]:
    content = message.get("content")
    where = message.path("content")
    if isinstance(content, str):
        return [{"text": content}]
    if not isinstance(content, list):
        raise invalid(where, "must be a string or an array of content parts")
    parts: list[dict[str, Any]] = []
    for index, raw in enumerate(content):
        part = Fields(raw, f"{where}[{index}]")
        kind = part.get("type")
        if kind not in {"text", "image_url", "input_audio", "file"}:
            raise untranslatable(part.path("type"), f"a {kind!r} part cannot be sent to Gemini")
        part.reject_unknown(_PART_KEYS[kind], f"a Gemini {kind} part")
        if kind == "text":
            text = part.string("text")
            if text is None:
                raise invalid(part.path("text"), "is required")
            parts.append({"text": text})
        elif kind == "image_url":
            parts.append(_image_part(part, conversation))
        elif kind == "input_audio":
            parts.append(_audio_part(part))
        else:
            parts.append(_file_part(part))
    return parts


def _function_call_part(raw: Any, where: str, names: dict[str, str]) -> dict[str, Any]:
    call = Fields(raw, where)
    if call.get("type") not in (None, "function"):
        raise untranslatable(call.path("type"), "only function tool calls exist in Gemini")
    # index is a streaming artifact some clients keep when they fold deltas.
    known = frozenset({"id", "type", "function", "extra_content", "index"})
    call.reject_unknown(known, "a tool call")
    function = call.obj("function")
    if function is None:
        raise invalid(call.path("function"), "is required")
    function.reject_unknown(frozenset({"name", "arguments"}), "a function call")
    name = function.string("name")
    if not name:
        raise invalid(function.path("name"), "is required")
    arguments = function.string("arguments") or "{}"
    args = json_object(arguments)
    if args is None:
        raise invalid(function.path("arguments"), "must be a JSON object")
    call_id = call.string("id")
    if call_id:
        names[call_id] = name
    part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
    signature = _thought_signature(call)
    if signature is not None:
        part["thoughtSignature"] = signature
    return part


def _thought_signature(call: Fields) -> str | None:
    """Google's OpenAI-compatible format carries Gemini's thought signature here."""
    extra = call.obj("extra_content")
    if extra is None:
        return None
    extra.reject_unknown(frozenset({"google"}), "extra_content")
    google = extra.obj("google")
    if google is None:
        return None
    google.reject_unknown(frozenset({"thought_signature"}), "extra_content.google")
    return google.string("thought_signature")


def _function_response(message: Fields, names: dict[str, str]) -> dict[str, Any]:
    call_id = message.string("tool_call_id")
    if not call_id:
        raise invalid(message.path("tool_call_id"), "is required")
    name = names.get(call_id)
    if name is None:
        raise invalid(
            message.path("tool_call_id"),
            f"no earlier assistant tool call has the id {call_id!r}; Gemini needs its name",
        )
    text = "".join(part["text"] for part in _text_parts(message, allow_refusal=False))
    response = json_object(text)
    if response is None:
        response = {"output": text}
    return {"functionResponse": {"name": name, "response": response}}


def _messages(body: Fields) -> list[Any]:
    messages = body.array("messages")
    if not messages:
        raise invalid(body.path("messages"), "must be a non-empty array")
    return messages


def messages_to_conversation(body: Fields) -> Conversation:
    conversation = Conversation()
    names: dict[str, str] = {}
    tool_turn: dict[str, Any] | None = None
    for index, raw in enumerate(_messages(body)):
        message = Fields(raw, f"messages[{index}]")
        role = message.get("role")
        if role not in _MESSAGE_KEYS:
            raise untranslatable(message.path("role"), f"role {role!r} cannot be sent to Gemini")
        for key, reason in _MESSAGE_REFUSALS.items():
            if key in message:
                raise untranslatable(message.path(key), reason)
        message.reject_unknown(_MESSAGE_KEYS[role], f"a Gemini {role} turn")
        if role == "tool":
            part = _function_response(message, names)
            if tool_turn is None:
                tool_turn = {"role": "user", "parts": []}
                conversation.contents.append(tool_turn)
            tool_turn["parts"].append(part)
            continue
        tool_turn = None
        if role in {"system", "developer"}:
            conversation.system.extend(_text_parts(message, allow_refusal=False))
        elif role == "user":
            parts = _user_parts(message, conversation) or [{"text": ""}]
            conversation.contents.append({"role": "user", "parts": parts})
        else:
            conversation.contents.append({"role": "model", "parts": _model_parts(message, names)})
    return conversation


def _model_parts(message: Fields, names: dict[str, str]) -> list[dict[str, Any]]:
    parts = _text_parts(message, allow_refusal=True)
    refusal = message.string("refusal")
    if refusal:
        parts.append({"text": refusal})
    calls = message.array("tool_calls") or []
    where = message.path("tool_calls")
    parts.extend(_function_call_part(call, f"{where}[{i}]", names) for i, call in enumerate(calls))
    if len(parts) > 1:
        parts = [part for part in parts if part.get("text") != ""]
    if not parts:
        raise invalid(message.where, "an assistant message needs content or tool_calls")
    return parts
