"""Gemini ``contents`` and ``systemInstruction`` → OpenAI ``messages``.

Gemini answers a function call by *name* (its ids are optional); OpenAI needs the call's id on
every tool message. Calls without an id get a stable one derived from their position, and a
response without an id answers the earliest unanswered call of that name, which is how Gemini
itself pairs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from anygate.core.translate.common import (
    Fields,
    call_digest_args,
    data_url,
    dumps,
    is_http_url,
    synthetic_call_id,
)
from anygate.core.translate.errors import invalid, untranslatable

_PART_KEYS = frozenset(
    {
        "text",
        "thought",
        "thoughtSignature",
        "inlineData",
        "fileData",
        "functionCall",
        "functionResponse",
    }
)
_AUDIO = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/mp3": "mp3",
    "audio/mpeg": "mp3",
}
_GEMINI_FILES = "generativelanguage.googleapis.com/"


@dataclass(slots=True)
class ImageDetail:
    """The request-wide media resolution, applied to every image as OpenAI's ``detail``."""

    detail: str | None = None
    path: str = ""


@dataclass(slots=True)
class _Call:
    id: str
    name: str
    answered: bool = False


def _image(url: str, detail: ImageDetail) -> dict[str, Any]:
    if detail.detail == "medium":
        raise untranslatable(detail.path, "OpenAI images have no medium detail")
    image: dict[str, Any] = {"url": url}
    if detail.detail is not None:
        image["detail"] = detail.detail
    return {"type": "image_url", "image_url": image}


def _inline(part: Fields, detail: ImageDetail) -> dict[str, Any]:
    blob = part.obj("inlineData", gemini=True)
    assert blob is not None
    blob.reject_unknown(frozenset({"mimeType", "data"}), "OpenAI inline media")
    mime, data = (blob.string("mimeType") or "").lower(), blob.string("data")
    if not data:
        raise invalid(blob.path("data"), "is required")
    if mime.startswith("image/"):
        return _image(data_url(mime, data), detail)
    if mime in _AUDIO:
        return {"type": "input_audio", "input_audio": {"data": data, "format": _AUDIO[mime]}}
    if mime == "application/pdf":
        return {"type": "file", "file": {"file_data": data_url(mime, data), "filename": "file.pdf"}}
    raise untranslatable(blob.path("mimeType"), f"OpenAI chat cannot take {mime!r} media")


def _file(part: Fields, detail: ImageDetail) -> dict[str, Any]:
    ref = part.obj("fileData", gemini=True)
    assert ref is not None
    ref.reject_unknown(frozenset({"mimeType", "fileUri"}), "an OpenAI image URL")
    uri = ref.string("fileUri") or ""
    mime = (ref.string("mimeType") or "image/").lower()
    if not is_http_url(uri) or _GEMINI_FILES in uri:
        raise untranslatable(ref.path("fileUri"), "only public http(s) URLs can be sent to OpenAI")
    if not mime.startswith("image/"):
        raise untranslatable(ref.path("mimeType"), "OpenAI fetches only images by URL")
    return _image(uri, detail)


def _user_messages(
    content: Fields, parts: list[Any], calls: list[_Call], detail: ImageDetail
) -> list[dict[str, Any]]:
    """Function responses first (OpenAI wants them right after the calls), then the rest."""
    tools: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    where = content.path("parts")
    for index, raw in enumerate(parts):
        part = Fields(raw, f"{where}[{index}]", gemini=True)
        part.reject_unknown(_PART_KEYS, "an OpenAI user message")
        if part.boolean("thought"):
            raise untranslatable(part.path("thought"), "OpenAI takes no thought summaries")
        if "functionResponse" in part:
            tools.append(_tool_message(part, calls))
        elif "inlineData" in part:
            items.append(_inline(part, detail))
        elif "fileData" in part:
            items.append(_file(part, detail))
        elif "functionCall" in part:
            raise untranslatable(part.path("functionCall"), "only the model role makes calls")
        elif "text" in part:
            items.append({"type": "text", "text": part.string("text")})
    if not items:
        return tools if tools else [{"role": "user", "content": ""}]
    if len(items) == 1 and items[0]["type"] == "text":
        return [*tools, {"role": "user", "content": items[0]["text"]}]
    return [*tools, {"role": "user", "content": items}]


def _tool_message(part: Fields, calls: list[_Call]) -> dict[str, Any]:
    response = part.obj("functionResponse", gemini=True)
    assert response is not None
    response.reject_unknown(frozenset({"id", "name", "response"}), "an OpenAI tool message")
    call_id, name = response.string("id"), response.string("name")
    if call_id:
        target = next((call for call in calls if call.id == call_id), None)
        if target is None:
            raise invalid(response.path("id"), f"no earlier functionCall has the id {call_id!r}")
    else:
        target = next((c for c in calls if c.name == name and not c.answered), None)
        if target is None:
            raise invalid(response.path("name"), f"no earlier unanswered functionCall {name!r}")
    target.answered = True
    body = response.get("response")
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise invalid(response.path("response"), "must be a JSON object")
    output = body.get("output")
    text = output if set(body) == {"output"} and isinstance(output, str) else dumps(body)
    return {"role": "tool", "tool_call_id": target.id, "content": text}


def _assistant_message(
    content: Fields, parts: list[Any], position: int, calls: list[_Call]
) -> dict[str, Any]:
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    where = content.path("parts")
    for index, raw in enumerate(parts):
        part = Fields(raw, f"{where}[{index}]", gemini=True)
        part.reject_unknown(_PART_KEYS - {"inlineData", "fileData"}, "an OpenAI assistant turn")
        if part.boolean("thought"):
            raise untranslatable(part.path("thought"), "OpenAI takes no thought summaries")
        if "functionResponse" in part:
            raise untranslatable(part.path("functionResponse"), "only the user role answers calls")
        if "functionCall" in part:
            tool_calls.append(_tool_call(part, position, index, calls))
        elif "text" in part:
            texts.append(part.string("text") or "")
        # A thought signature on a text part is only a hint for Gemini's next turn.
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    elif message["content"] is None:
        message["content"] = ""
    return message


def _tool_call(part: Fields, position: int, index: int, calls: list[_Call]) -> dict[str, Any]:
    call = part.obj("functionCall", gemini=True)
    assert call is not None
    call.reject_unknown(frozenset({"id", "name", "args"}), "an OpenAI tool call")
    name = call.string("name")
    if not name:
        raise invalid(call.path("name"), "is required")
    args = call.get("args")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise invalid(call.path("args"), "must be a JSON object")
    call_id = call.string("id") or synthetic_call_id(
        "contents", position, index, name, call_digest_args(args)
    )
    calls.append(_Call(call_id, name))
    tool_call: dict[str, Any] = {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": dumps(args)},
    }
    signature = part.string("thoughtSignature")
    if signature:
        tool_call["extra_content"] = {"google": {"thought_signature": signature}}
    return tool_call


def system_message(body: Fields) -> dict[str, Any] | None:
    system = body.obj("systemInstruction", gemini=True)
    if system is None:
        return None
    system.reject_unknown(frozenset({"role", "parts"}), "an OpenAI system message")
    texts: list[str] = []
    where = system.path("parts")
    for index, raw in enumerate(system.array("parts") or []):
        part = Fields(raw, f"{where}[{index}]", gemini=True)
        part.reject_unknown(frozenset({"text"}), "an OpenAI system message")
        texts.append(part.string("text") or "")
    if not texts:
        return None
    if len(texts) == 1:
        return {"role": "system", "content": texts[0]}
    return {"role": "system", "content": [{"type": "text", "text": text} for text in texts]}


def contents_to_messages(body: Fields, detail: ImageDetail) -> list[dict[str, Any]]:
    contents = body.array("contents")
    if not contents:
        raise invalid(body.path("contents"), "must be a non-empty array")
    messages: list[dict[str, Any]] = []
    calls: list[_Call] = []
    for position, raw in enumerate(contents):
        content = Fields(raw, f"{body.path('contents')}[{position}]", gemini=True)
        content.reject_unknown(frozenset({"role", "parts"}), "an OpenAI message")
        parts = content.array("parts")
        if parts is None:
            raise invalid(content.path("parts"), "is required")
        role = content.string("role") or "user"
        if role == "model":
            messages.append(_assistant_message(content, parts, position, calls))
        elif role in {"user", "function"}:
            messages.extend(_user_messages(content, parts, calls, detail))
        else:
            raise untranslatable(content.path("role"), f"role {role!r} has no OpenAI counterpart")
    return messages
