"""An OpenAI chat-completions request → a Gemini ``GenerateContentRequest`` body.

Schemas go over unchanged as ``parametersJsonSchema`` / ``responseJsonSchema``: the Gemini API
takes JSON Schema there, so no lossy rewrite into its older OpenAPI-subset ``Schema`` (which has
no ``$ref``, ``oneOf`` or ``additionalProperties`` on many models) is needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from anygate.core.translate.chat_messages import Conversation, messages_to_conversation
from anygate.core.translate.common import Fields
from anygate.core.translate.errors import invalid, untranslatable
from anygate.core.translate.reasoning import effort_to_thinking

BOOKKEEPING = frozenset(
    {
        "model",
        "stream",
        "stream_options",
        "user",
        "safety_identifier",
        "metadata",
        "prompt_cache_key",
        "prompt_cache_retention",
        "prompt_cache_options",
    }
)
"""Accepted and not forwarded: they route, tag or cache the call and never change the answer."""

REFUSED: dict[str, str] = {
    "logit_bias": "Gemini has no per-token logit bias",
    "top_logprobs": "Gemini's log-probabilities are not translated",
    "audio": "Gemini's chat answers are text only",
    "prediction": "Gemini has no predicted outputs",
    "functions": "the deprecated functions field is not translated; send tools instead",
    "function_call": "the deprecated function_call is not translated; send tool_choice instead",
    "web_search_options": "OpenAI web search has no Gemini counterpart here",
    "verbosity": "Gemini has no verbosity setting",
    "moderation": "OpenAI moderation policies have no Gemini counterpart",
}
TRANSLATED = frozenset(
    {
        "messages",
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "n",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "response_format",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "reasoning_effort",
        "logprobs",
        "modalities",
        "store",
        "service_tier",
    }
)
_RESOLUTIONS = {"low": "MEDIA_RESOLUTION_LOW", "high": "MEDIA_RESOLUTION_HIGH"}


def _check_top_level(body: Fields) -> None:
    for key in body.present():
        if key in REFUSED:
            raise untranslatable(body.path(key), REFUSED[key])
    body.reject_unknown(TRANSLATED | BOOKKEEPING, "Gemini's GenerateContentRequest")
    if body.boolean("logprobs"):
        raise untranslatable(body.path("logprobs"), "Gemini's log-probabilities are not translated")
    if body.boolean("store"):
        raise untranslatable(body.path("store"), "Gemini does not store completions for OpenAI")
    if body.boolean("parallel_tool_calls") is False:
        raise untranslatable(
            body.path("parallel_tool_calls"), "Gemini cannot be limited to one call per turn"
        )
    modalities = body.array("modalities")
    if modalities is not None and modalities != ["text"]:
        raise untranslatable(body.path("modalities"), "only ['text'] is translated to Gemini")
    tier = body.string("service_tier")
    if tier not in {None, "auto", "default"}:
        raise untranslatable(body.path("service_tier"), f"{tier!r} has no Gemini counterpart")


def _stop_sequences(body: Fields) -> list[str] | None:
    stop = body.get("stop")
    if stop is None:
        return None
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(item, str) for item in stop):
        return list(stop) or None
    raise invalid(body.path("stop"), "must be a string or an array of strings")


def _response_format(body: Fields, config: dict[str, Any]) -> None:
    fmt = body.obj("response_format")
    if fmt is None:
        return
    kind = fmt.get("type")
    if kind == "text":
        fmt.reject_unknown(frozenset({"type"}), "a text response format")
        return
    if kind == "json_object":
        fmt.reject_unknown(frozenset({"type"}), "a json_object response format")
        config["responseMimeType"] = "application/json"
        return
    if kind != "json_schema":
        raise untranslatable(fmt.path("type"), f"response format {kind!r} has no Gemini form")
    fmt.reject_unknown(frozenset({"type", "json_schema"}), "a json_schema response format")
    spec = fmt.obj("json_schema")
    if spec is None:
        raise invalid(fmt.path("json_schema"), "is required")
    # name labels the schema and strict asks for what Gemini's structured output always does.
    spec.reject_unknown(frozenset({"name", "description", "schema", "strict"}), "json_schema")
    config["responseMimeType"] = "application/json"
    schema = spec.get("schema")
    if schema is None:
        return
    if not isinstance(schema, Mapping):
        raise invalid(spec.path("schema"), "must be a JSON object")
    schema = dict(schema)
    description = spec.string("description")
    if description is not None:
        if schema.get("description", description) != description:
            raise untranslatable(
                spec.path("description"), "the schema already has a different description"
            )
        schema["description"] = description
    config["responseJsonSchema"] = schema


def _generation_config(body: Fields, conversation: Conversation) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for openai_key, gemini_key in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        value = body.number(openai_key)
        if value is not None:
            config[gemini_key] = value
    for openai_key, gemini_key in (("n", "candidateCount"), ("seed", "seed")):
        integer = body.integer(openai_key)
        if integer is not None:
            config[gemini_key] = integer
    max_out = body.integer("max_completion_tokens")
    if max_out is None:
        max_out = body.integer("max_tokens")
    if max_out is not None:
        config["maxOutputTokens"] = max_out
    stops = _stop_sequences(body)
    if stops:
        config["stopSequences"] = stops
    _response_format(body, config)
    effort = body.string("reasoning_effort")
    if effort is not None:
        config["thinkingConfig"] = effort_to_thinking(effort, body.path("reasoning_effort"))
    resolution = _media_resolution(conversation)
    if resolution is not None:
        config["mediaResolution"] = resolution
    return config


def _media_resolution(conversation: Conversation) -> str | None:
    """Gemini sets resolution per request, so every image asking for one must agree."""
    if not conversation.image_details:
        return None
    first, _ = conversation.image_details[0]
    for detail, param in conversation.image_details[1:]:
        if detail != first:
            raise untranslatable(
                param, "Gemini applies one media resolution to all images of a request"
            )
    return _RESOLUTIONS[first]


def _tools(body: Fields) -> tuple[list[dict[str, Any]], set[str]]:
    tools = body.array("tools")
    declarations: list[dict[str, Any]] = []
    for index, raw in enumerate(tools or []):
        tool = Fields(raw, f"{body.path('tools')}[{index}]")
        if tool.get("type") != "function":
            raise untranslatable(tool.path("type"), "only function tools exist in Gemini")
        tool.reject_unknown(frozenset({"type", "function"}), "a Gemini tool")
        function = tool.obj("function")
        if function is None:
            raise invalid(tool.path("function"), "is required")
        # strict asks for schema-conforming arguments, which Gemini's function calling gives.
        function.reject_unknown(
            frozenset({"name", "description", "parameters", "strict"}), "a function declaration"
        )
        name = function.string("name")
        if not name:
            raise invalid(function.path("name"), "is required")
        declaration: dict[str, Any] = {"name": name}
        description = function.string("description")
        if description is not None:
            declaration["description"] = description
        parameters = function.get("parameters")
        if parameters is not None:
            if not isinstance(parameters, Mapping):
                raise invalid(function.path("parameters"), "must be a JSON object")
            declaration["parametersJsonSchema"] = dict(parameters)
        declarations.append(declaration)
    return declarations, {declaration["name"] for declaration in declarations}


def _named_function(choice: Fields, names: set[str]) -> str:
    function = choice.obj("function")
    if function is None:
        raise invalid(choice.path("function"), "is required")
    function.reject_unknown(frozenset({"name"}), "a named tool choice")
    name = function.string("name")
    if not name or name not in names:
        raise invalid(function.path("name"), f"{name!r} is not one of the request's tools")
    return name


def _tool_config(body: Fields, names: set[str]) -> dict[str, Any] | None:
    raw = body.get("tool_choice")
    if raw is None:
        return None
    modes = {"none": "NONE", "auto": "AUTO", "required": "ANY"}
    if isinstance(raw, str):
        if raw not in modes:
            raise invalid(body.path("tool_choice"), f"unknown tool choice {raw!r}")
        return {"functionCallingConfig": {"mode": modes[raw]}}
    choice = Fields(raw, body.path("tool_choice"))
    kind = choice.get("type")
    if kind == "function":
        choice.reject_unknown(frozenset({"type", "function"}), "a named tool choice")
        allowed = [_named_function(choice, names)]
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": allowed}}
    if kind != "allowed_tools":
        raise untranslatable(choice.path("type"), f"tool choice {kind!r} has no Gemini form")
    choice.reject_unknown(frozenset({"type", "allowed_tools"}), "an allowed_tools choice")
    spec = choice.obj("allowed_tools")
    if spec is None:
        raise invalid(choice.path("allowed_tools"), "is required")
    spec.reject_unknown(frozenset({"mode", "tools"}), "allowed_tools")
    mode = spec.get("mode")
    if mode not in {"auto", "required"}:
        raise invalid(spec.path("mode"), "must be 'auto' or 'required'")
    allowed = []
    for index, item in enumerate(spec.array("tools") or []):
        entry = Fields(item, f"{spec.path('tools')}[{index}]")
        if entry.get("type") != "function":
            raise untranslatable(entry.path("type"), "only function tools exist in Gemini")
        entry.reject_unknown(frozenset({"type", "function"}), "an allowed tool")
        allowed.append(_named_function(entry, names))
    # VALIDATED is Gemini's "calls limited to the allowed names, or plain text".
    gemini_mode = "ANY" if mode == "required" else "VALIDATED"
    return {"functionCallingConfig": {"mode": gemini_mode, "allowedFunctionNames": allowed}}


def chat_request_to_gemini(body: Mapping[str, Any]) -> dict[str, Any]:
    """The Gemini request for an OpenAI chat request; the model goes in the URL, not here."""
    fields = Fields(body, "")
    _check_top_level(fields)
    conversation = messages_to_conversation(fields)
    if not conversation.contents:
        raise untranslatable(
            fields.path("messages"), "Gemini needs at least one user, assistant or tool message"
        )
    declarations, names = _tools(fields)
    request: dict[str, Any] = {"contents": conversation.contents}
    if conversation.system:
        request["systemInstruction"] = {"parts": conversation.system}
    if declarations:
        request["tools"] = [{"functionDeclarations": declarations}]
    tool_config = _tool_config(fields, names)
    if tool_config is not None:
        request["toolConfig"] = tool_config
    config = _generation_config(fields, conversation)
    if config:
        request["generationConfig"] = config
    return request
