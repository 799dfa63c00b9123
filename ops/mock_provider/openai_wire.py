"""OpenAI wire format: request validation and the bodies, chunks and errors the API would send.

Shapes follow the openai SDK's `ChatCompletion`, `ChatCompletionChunk` and `Model` types, so
the SDK (and anything mirroring it) parses them unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from anygate.ops.mock_provider.common import (
    BadRequestError,
    Completion,
    Shaping,
    count_words,
    json_reply,
    reply_text,
    shape_text,
    split_chunks,
    tool_completion,
    tool_result_text,
)
from anygate.ops.mock_provider.settings import MockSettings

FINGERPRINT = "fp_mock"
MODEL_CREATED = 1_700_000_000
MODELS: tuple[str, ...] = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1-mini",
    "mock-model",
    "text-embedding-3-large",
    "text-embedding-3-small",
)
_FINISH = {"stop": "stop", "length": "length", "tool": "tool_calls"}
_MAX_CHOICES = 128


@dataclass(frozen=True, slots=True)
class ChatPlan:
    """What the mock will answer to one chat request, decided before any byte is sent."""

    model: str
    stream: bool
    include_usage: bool
    prompt_tokens: int
    completion_tokens: int
    completions: tuple[Completion, ...]
    chunk_count: int


def error_body(
    message: str,
    *,
    kind: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, Mapping) and part.get("type") in ("text", "input_text")
        )
    return ""


def _messages(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    messages = body.get("messages")
    if messages is None:
        raise BadRequestError("Missing required parameter: 'messages'.", param="messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequestError("Invalid 'messages': expected a non-empty array.", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise BadRequestError(
                f"Invalid 'messages[{index}]': expected an object with a 'role'.",
                param=f"messages[{index}]",
            )
    return messages


def positive_int(body: Mapping[str, Any], name: str, default: int | None) -> int | None:
    """An optional integer parameter of at least 1, rejected in OpenAI's words otherwise."""
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequestError(f"Invalid '{name}': expected an integer of at least 1.", param=name)
    return value


def _stops(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise BadRequestError("Invalid 'stop': expected a string or an array of strings.", param="stop")


def _chosen_tool(body: Mapping[str, Any]) -> tuple[str, Any] | None:
    """The function a real model would be steered to call, or None when calling is off."""
    tools = body.get("tools")
    if not isinstance(tools, list):
        return None
    functions = {
        str(tool["function"]["name"]): tool["function"].get("parameters")
        for tool in tools
        if isinstance(tool, Mapping)
        and tool.get("type", "function") == "function"
        and isinstance(tool.get("function"), Mapping)
        and "name" in tool["function"]
    }
    if not functions:
        return None
    choice = body.get("tool_choice")
    if choice == "none":
        return None
    allowed = list(functions)
    if isinstance(choice, Mapping):
        if choice.get("type") == "allowed_tools":
            listed = (choice.get("allowed_tools") or {}).get("tools") or []
            allowed = [
                str(item["function"]["name"])
                for item in listed
                if isinstance(item, Mapping) and isinstance(item.get("function"), Mapping)
            ]
        else:
            named = (choice.get("function") or {}).get("name")
            allowed = [str(named)] if named else []
        allowed = [name for name in allowed if name in functions]
        if not allowed:
            raise BadRequestError("Invalid 'tool_choice': no such function.", param="tool_choice")
    return allowed[0], functions[allowed[0]]


def _json_schema(body: Mapping[str, Any]) -> tuple[bool, Any]:
    response_format = body.get("response_format")
    if not isinstance(response_format, Mapping):
        return False, None
    kind = response_format.get("type")
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, Mapping) or not isinstance(spec.get("schema", {}), Mapping):
            raise BadRequestError(
                "Invalid 'response_format.json_schema'.", param="response_format.json_schema"
            )
        return True, spec.get("schema", {})
    return kind == "json_object", None


def plan_chat(body: Any, settings: MockSettings) -> ChatPlan:
    """Validate a chat request as the API would and decide each choice's content."""
    if not isinstance(body, Mapping):
        raise BadRequestError("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequestError("Missing required parameter: 'model'.", param="model")
    messages = _messages(body)
    stream = body.get("stream") is True
    options = body.get("stream_options")
    if options is not None and not stream:
        raise BadRequestError(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )
    include_usage = isinstance(options, Mapping) and options.get("include_usage") is True
    choices = positive_int(body, "n", 1) or 1
    if choices > _MAX_CHOICES:
        raise BadRequestError(f"Invalid 'n': at most {_MAX_CHOICES}.", param="n")
    max_words = positive_int(body, "max_completion_tokens", None)
    if max_words is None:
        max_words = positive_int(body, "max_tokens", None)
    shaping = Shaping(
        chunk_count=settings.chunk_count,
        max_words=max_words,
        stops=_stops(body.get("stop")),
    )
    texts = [_text_of(message.get("content")) for message in messages]
    prompt_tokens = (
        settings.prompt_tokens
        if settings.prompt_tokens is not None
        else max(1, sum(count_words(text) for text in texts))
    )
    completions = tuple(
        _complete(body, messages, texts, shaping, variant) for variant in range(choices)
    )
    completion_tokens = (
        settings.completion_tokens
        if settings.completion_tokens is not None
        else sum(completion.tokens for completion in completions)
    )
    return ChatPlan(
        model=model,
        stream=stream,
        include_usage=include_usage,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        completions=completions,
        chunk_count=settings.chunk_count,
    )


def _complete(
    body: Mapping[str, Any],
    messages: list[Mapping[str, Any]],
    texts: list[str],
    shaping: Shaping,
    variant: int,
) -> Completion:
    last = messages[-1]
    if last.get("role") in ("tool", "function"):
        return shape_text(tool_result_text(texts[-1], chunk_count=shaping.chunk_count), shaping)
    tool = _chosen_tool(body)
    if tool is not None:
        return tool_completion(tool[0], tool[1])
    wants_json, schema = _json_schema(body)
    user_texts = [
        text for message, text in zip(messages, texts, strict=True) if message.get("role") == "user"
    ]
    prompt = user_texts[-1] if user_texts else texts[-1]
    text = reply_text(prompt, variant=variant, chunk_count=shaping.chunk_count)
    if wants_json:
        text = json_reply(schema, text)
    return shape_text(text, shaping)


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _call_id(completion_id: str, index: int) -> str:
    return f"call_{completion_id.rpartition('-')[2]}{index}"


def _message(completion: Completion, call_id: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if completion.tool_call else completion.text,
        "refusal": None,
        "annotations": [],
    }
    if completion.tool_call is not None:
        message["tool_calls"] = [
            {
                "id": call_id,
                "type": "function",
                "function": {
                    "name": completion.tool_call.name,
                    "arguments": completion.tool_call.arguments_json,
                },
            }
        ]
    return message


def chat_completion(plan: ChatPlan, *, completion_id: str, created: int) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": plan.model,
        "choices": [
            {
                "index": index,
                "message": _message(completion, _call_id(completion_id, index)),
                "logprobs": None,
                "finish_reason": _FINISH[completion.finish],
            }
            for index, completion in enumerate(plan.completions)
        ],
        "usage": usage(plan.prompt_tokens, plan.completion_tokens),
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }


def chat_chunks(plan: ChatPlan, *, completion_id: str, created: int) -> list[dict[str, Any]]:
    """Every chunk of the stream in order: role, content (or argument) pieces, finish, usage.

    Choices are interleaved step by step as the API does for `n > 1`; the pieces of each
    choice concatenate to exactly the non-streamed content or arguments.
    """
    head: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": plan.model,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }
    if plan.include_usage:
        head["usage"] = None

    def chunk(index: int, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**head, "choices": [choice]}

    chunks: list[dict[str, Any]] = []
    pieces: list[list[str]] = []
    for index, completion in enumerate(plan.completions):
        call = completion.tool_call
        if call is None:
            chunks.append(chunk(index, {"role": "assistant", "content": "", "refusal": None}, None))
            pieces.append(split_chunks(completion.text, plan.chunk_count))
            continue
        opening = {
            "index": 0,
            "id": _call_id(completion_id, index),
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        chunks.append(
            chunk(index, {"role": "assistant", "content": None, "tool_calls": [opening]}, None)
        )
        pieces.append(split_chunks(call.arguments_json, plan.chunk_count))
    for step in range(max(len(choice) for choice in pieces)):
        for index, choice_pieces in enumerate(pieces):
            if step >= len(choice_pieces):
                continue
            piece = choice_pieces[step]
            if plan.completions[index].tool_call is None:
                delta: dict[str, Any] = {"content": piece}
            else:
                delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
            chunks.append(chunk(index, delta, None))
    for index, completion in enumerate(plan.completions):
        chunks.append(chunk(index, {}, _FINISH[completion.finish]))
    if plan.include_usage:
        chunks.append(
            {**head, "choices": [], "usage": usage(plan.prompt_tokens, plan.completion_tokens)}
        )
    return chunks


def model_object(model: str) -> dict[str, Any]:
    owner = "openai" if model.startswith(("gpt-", "text-embedding-")) else "system"
    return {"id": model, "object": "model", "created": MODEL_CREATED, "owned_by": owner}


def models_response() -> dict[str, Any]:
    return {"object": "list", "data": [model_object(model) for model in MODELS]}


def fault_error(status: int, code: str | None = None) -> dict[str, Any]:
    """The bodies OpenAI sends for throttling, an account out of credit and server trouble."""
    if status == 429 and code == "insufficient_quota":
        return error_body(
            "You exceeded your current quota, please check your plan and billing details. For "
            "more information on this error, read the docs: "
            "https://platform.openai.com/docs/guides/error-codes/api-errors.",
            kind="insufficient_quota",
            code="insufficient_quota",
        )
    if status == 429:
        return error_body(
            "Rate limit reached for requests (mock fault). Please try again later.",
            kind="requests",
            code="rate_limit_exceeded",
        )
    if status == 503:
        return error_body(
            "The engine is currently overloaded, please try again later.", kind="server_error"
        )
    return error_body(
        "The server had an error while processing your request. Sorry about that!",
        kind="server_error",
    )
