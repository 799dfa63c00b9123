"""A Gemini ``GenerateContentRequest`` (as google-genai sends it) → an OpenAI chat request.

Used by the Gemini-compatible surface, so that any model, whichever provider serves it, answers
a Gemini client. Fields OpenAI has no place for are refused with the path the client sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from anygate.core.translate.common import Fields
from anygate.core.translate.errors import invalid, untranslatable
from anygate.core.translate.gemini_contents import (
    ImageDetail,
    contents_to_messages,
    system_message,
)
from anygate.core.translate.reasoning import thinking_to_effort
from anygate.core.translate.schema import convert

_TOP_LEVEL = frozenset(
    {
        "contents",
        "systemInstruction",
        "tools",
        "toolConfig",
        "generationConfig",
        "safetySettings",
        "cachedContent",
        "labels",
        "model",
        "serviceTier",
        "store",
    }
)
_GENERATION = frozenset(
    {
        "temperature",
        "topP",
        "topK",
        "candidateCount",
        "maxOutputTokens",
        "stopSequences",
        "presencePenalty",
        "frequencyPenalty",
        "seed",
        "responseMimeType",
        "responseSchema",
        "responseJsonSchema",
        "responseLogprobs",
        "logprobs",
        "responseModalities",
        "thinkingConfig",
        "mediaResolution",
    }
)
_REFUSED_GENERATION = {
    "topK": "OpenAI has no top-k sampling",
    "logprobs": "log-probabilities are not translated",
}
_RESOLUTIONS = {
    "MEDIA_RESOLUTION_LOW": "low",
    "MEDIA_RESOLUTION_MEDIUM": "medium",
    "MEDIA_RESOLUTION_HIGH": "high",
}
_SCHEMA_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_NUMBERS = {
    "temperature": "temperature",
    "topP": "top_p",
    "presencePenalty": "presence_penalty",
    "frequencyPenalty": "frequency_penalty",
}
_INTEGERS = {"candidateCount": "n", "seed": "seed", "maxOutputTokens": "max_completion_tokens"}

CHAT_FIELD_NAMES: Mapping[str, str] = {
    **{openai: f"generationConfig.{gemini}" for gemini, openai in (_NUMBERS | _INTEGERS).items()},
    "stop": "generationConfig.stopSequences",
    "response_format": "generationConfig.responseMimeType",
    "reasoning_effort": "generationConfig.thinkingConfig",
    "messages": "contents",
    "tools": "tools",
    "tool_choice": "toolConfig",
}
"""Where each field of the translated request came from: the API checks the translation with
the one OpenAI chat schema, and an error there names the field the Gemini client sent."""


def _check_top_level(body: Fields) -> None:
    body.reject_unknown(_TOP_LEVEL, "OpenAI's chat request")
    if "cachedContent" in body:
        raise untranslatable(body.path("cachedContent"), "Gemini cached contents live at Google")
    if body.array("safetySettings"):
        raise untranslatable(body.path("safetySettings"), "OpenAI has no safety thresholds")
    tier = body.string("serviceTier")
    if tier is not None and tier.lower() not in {"standard", "unspecified"}:
        raise untranslatable(body.path("serviceTier"), f"{tier!r} is not translated")
    if body.boolean("store"):
        raise untranslatable(body.path("store"), "OpenAI chat does not store for Gemini")


def _detail(config: Fields | None) -> ImageDetail:
    if config is None:
        return ImageDetail()
    raw = config.string("mediaResolution")
    if raw is None or raw.upper() == "MEDIA_RESOLUTION_UNSPECIFIED":
        return ImageDetail()
    detail = _RESOLUTIONS.get(raw.upper())
    if detail is None:
        raise untranslatable(config.path("mediaResolution"), f"unknown resolution {raw!r}")
    return ImageDetail(detail, config.path("mediaResolution"))


def _response_format(config: Fields) -> dict[str, Any] | None:
    mime = config.string("responseMimeType")
    schema: Any = config.get("responseJsonSchema")
    if schema is not None and not isinstance(schema, Mapping):
        raise invalid(config.path("responseJsonSchema"), "must be a JSON object")
    if schema is None and "responseSchema" in config:
        schema = convert(config.get("responseSchema"), config.path("responseSchema"))
    if mime is None or mime == "text/plain":
        if schema is not None:
            raise invalid(config.path("responseMimeType"), "a schema needs application/json")
        return None
    if mime != "application/json":
        raise untranslatable(config.path("responseMimeType"), f"{mime!r} has no OpenAI form")
    if schema is None:
        return {"type": "json_object"}
    title = schema.get("title")
    name = title if isinstance(title, str) and _SCHEMA_NAME.match(title) else "response"
    return {"type": "json_schema", "json_schema": {"name": name, "schema": dict(schema)}}


def _generation(config: Fields, chat: dict[str, Any]) -> None:
    config.reject_unknown(_GENERATION, "OpenAI's chat request")
    for key, reason in _REFUSED_GENERATION.items():
        if key in config:
            raise untranslatable(config.path(key), reason)
    if config.boolean("responseLogprobs"):
        raise untranslatable(config.path("responseLogprobs"), _REFUSED_GENERATION["logprobs"])
    modalities = config.array("responseModalities")
    if modalities and [str(m).upper() for m in modalities] != ["TEXT"]:
        raise untranslatable(config.path("responseModalities"), "OpenAI chat answers in text")
    for gemini_key, openai_key in _NUMBERS.items():
        value = config.number(gemini_key)
        if value is not None:
            chat[openai_key] = value
    for gemini_key, openai_key in _INTEGERS.items():
        integer = config.integer(gemini_key)
        if integer is not None:
            chat[openai_key] = integer
    stops = config.array("stopSequences")
    if stops:
        if not all(isinstance(stop, str) for stop in stops):
            raise invalid(config.path("stopSequences"), "must be an array of strings")
        chat["stop"] = list(stops)
    response_format = _response_format(config)
    if response_format is not None:
        chat["response_format"] = response_format
    thinking = config.obj("thinkingConfig", gemini=True)
    effort = thinking_to_effort(thinking) if thinking is not None else None
    if effort is not None:
        chat["reasoning_effort"] = effort


def _function(raw: Any, where: str) -> dict[str, Any]:
    declaration = Fields(raw, where, gemini=True)
    # response / responseJsonSchema describe what the function returns, which google-genai
    # fills in from every Python function's return annotation; OpenAI tools have no such field
    # and the model never produces it, so it is accepted and not forwarded.
    declaration.reject_unknown(
        frozenset(
            {
                "name",
                "description",
                "parameters",
                "parametersJsonSchema",
                "response",
                "responseJsonSchema",
            }
        ),
        "an OpenAI function",
    )
    name = declaration.string("name")
    if not name:
        raise invalid(declaration.path("name"), "is required")
    function: dict[str, Any] = {"name": name}
    description = declaration.string("description")
    if description is not None:
        function["description"] = description
    parameters = declaration.get("parametersJsonSchema")
    if parameters is not None:
        if not isinstance(parameters, Mapping):
            raise invalid(declaration.path("parametersJsonSchema"), "must be a JSON object")
        function["parameters"] = dict(parameters)
    elif "parameters" in declaration:
        function["parameters"] = convert(
            declaration.get("parameters"), declaration.path("parameters")
        )
    return {"type": "function", "function": function}


def _tools(body: Fields) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    for index, raw in enumerate(body.array("tools") or []):
        tool = Fields(raw, f"{body.path('tools')}[{index}]", gemini=True)
        for key in tool.present():
            if key != "functionDeclarations":
                raise untranslatable(tool.path(key), "OpenAI chat has only function tools")
        where = tool.path("functionDeclarations")
        declarations = tool.array("functionDeclarations") or []
        tools.extend(_function(raw, f"{where}[{i}]") for i, raw in enumerate(declarations))
    return tools


def _named(names: list[str], mode: str) -> dict[str, Any]:
    tools = [{"type": "function", "function": {"name": name}} for name in names]
    return {"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": tools}}


def _tool_choice(body: Fields) -> Any:
    tool_config = body.obj("toolConfig", gemini=True)
    if tool_config is None:
        return None
    tool_config.reject_unknown(frozenset({"functionCallingConfig"}), "OpenAI's tool_choice")
    calling = tool_config.obj("functionCallingConfig", gemini=True)
    if calling is None:
        return None
    calling.reject_unknown(frozenset({"mode", "allowedFunctionNames"}), "OpenAI's tool_choice")
    mode = (calling.string("mode") or "AUTO").upper()
    names = calling.array("allowedFunctionNames") or []
    if not all(isinstance(name, str) for name in names):
        raise invalid(calling.path("allowedFunctionNames"), "must be an array of strings")
    if mode == "NONE":
        return "none"
    if mode == "ANY":
        if len(names) == 1:
            return {"type": "function", "function": {"name": names[0]}}
        return _named(names, "required") if names else "required"
    if mode in {"AUTO", "VALIDATED", "MODE_UNSPECIFIED"}:
        return _named(names, "auto") if names else "auto"
    raise untranslatable(calling.path("mode"), f"mode {mode!r} has no OpenAI tool_choice")


def gemini_request_to_chat(body: Mapping[str, Any], *, model: str) -> dict[str, Any]:
    """The OpenAI chat request for a Gemini request; the caller adds ``stream``."""
    fields = Fields(body, "", gemini=True)
    _check_top_level(fields)
    config = fields.obj("generationConfig", gemini=True)
    messages: list[dict[str, Any]] = []
    system = system_message(fields)
    if system is not None:
        messages.append(system)
    messages.extend(contents_to_messages(fields, _detail(config)))
    chat: dict[str, Any] = {"model": model, "messages": messages}
    tools = _tools(fields)
    if tools:
        chat["tools"] = tools
    choice = _tool_choice(fields)
    if choice is not None:
        chat["tool_choice"] = choice
    if config is not None:
        _generation(config, chat)
    return chat
