"""The OpenAI-shaped builders, checked against the openai SDK's own response types."""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson
import pytest
from openai import BaseModel as OpenAIModel
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from anygate.ops.mock_provider.common import BadRequestError
from anygate.ops.mock_provider.openai_embeddings import embeddings_response, plan_embeddings
from anygate.ops.mock_provider.openai_wire import (
    chat_chunks,
    chat_completion,
    models_response,
    plan_chat,
)
from anygate.ops.mock_provider.settings import MockSettings

SETTINGS = MockSettings()
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "metric": {"type": "boolean"},
                "note": {"type": "string"},
            },
            "required": ["city", "days", "metric"],
        },
    },
}
TIME_TOOL = {"type": "function", "function": {"name": "get_time", "parameters": {}}}


def chat(**fields: Any) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hello there"}],
        **fields,
    }


def complete(body: dict[str, Any], settings: MockSettings = SETTINGS) -> dict[str, Any]:
    return chat_completion(plan_chat(body, settings), completion_id="chatcmpl-abc", created=1)


def stream(body: dict[str, Any], settings: MockSettings = SETTINGS) -> list[dict[str, Any]]:
    return chat_chunks(plan_chat(body, settings), completion_id="chatcmpl-abc", created=1)


def assert_no_unknown_fields(model: object) -> None:
    """The SDK tolerates unknown keys; a misspelt field would slip through without this."""
    if isinstance(model, OpenAIModel):
        assert not model.model_extra, (
            f"unknown fields on {type(model).__name__}: {model.model_extra}"
        )
        for name in type(model).model_fields:
            assert_no_unknown_fields(getattr(model, name))
    elif isinstance(model, list):
        for item in model:
            assert_no_unknown_fields(item)


def streamed_text(chunks: list[dict[str, Any]], index: int = 0) -> str:
    return "".join(
        choice["delta"].get("content") or ""
        for chunk in chunks
        for choice in chunk["choices"]
        if choice["index"] == index
    )


def test_completion_parses_as_sdk_chat_completion_without_unknown_fields() -> None:
    completion = ChatCompletion.model_validate(complete(chat()))

    assert_no_unknown_fields(completion)


def test_completion_echoes_last_user_message() -> None:
    body = chat(
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi  you"}]
    )

    assert complete(body)["choices"][0]["message"]["content"] == "Mock reply to: hi you"


def test_completion_reads_text_parts_of_array_content() -> None:
    body = chat(messages=[{"role": "user", "content": [{"type": "text", "text": "parts work"}]}])

    assert complete(body)["choices"][0]["message"]["content"] == "Mock reply to: parts work"


def test_usage_counts_words_of_prompt_and_reply() -> None:
    usage = complete(chat())["usage"]

    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (2, 5, 7)


def test_fixed_token_settings_override_counted_usage() -> None:
    settings = MockSettings(prompt_tokens=100, completion_tokens=30)

    usage = complete(chat(), settings)["usage"]

    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (
        100,
        30,
        130,
    )


def test_chunks_parse_as_sdk_chat_completion_chunks_without_unknown_fields() -> None:
    for chunk in stream(chat(stream=True, stream_options={"include_usage": True})):
        assert_no_unknown_fields(ChatCompletionChunk.model_validate(chunk))


def test_streamed_content_concatenates_to_the_unary_content() -> None:
    unary = complete(chat())["choices"][0]["message"]["content"]

    assert streamed_text(stream(chat(stream=True))) == unary


def test_stream_has_exactly_chunk_count_content_chunks_even_for_short_replies() -> None:
    settings = MockSettings(chunk_count=50)

    chunks = stream(chat(stream=True), settings)

    assert sum(1 for chunk in chunks if chunk["choices"][0]["delta"].get("content")) == 50


def test_stream_opens_with_role_and_closes_with_finish_reason() -> None:
    chunks = stream(chat(stream=True))

    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }


def test_include_usage_appends_a_usage_chunk_with_no_choices() -> None:
    chunks = stream(chat(stream=True, stream_options={"include_usage": True}))

    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] == 7
    assert all(chunk["usage"] is None for chunk in chunks[:-1])


def test_stream_without_include_usage_has_no_usage_key() -> None:
    assert all("usage" not in chunk for chunk in stream(chat(stream=True)))


def test_n_returns_indexed_choices_with_distinct_text() -> None:
    choices = complete(chat(n=2))["choices"]

    assert [choice["index"] for choice in choices] == [0, 1]
    assert choices[0]["message"]["content"] != choices[1]["message"]["content"]


def test_n_streams_each_choice_to_its_unary_text() -> None:
    unary = complete(chat(n=2))["choices"]

    chunks = stream(chat(n=2, stream=True))

    assert [streamed_text(chunks, i) for i in (0, 1)] == [c["message"]["content"] for c in unary]


def test_max_tokens_truncates_and_reports_length() -> None:
    choice = complete(chat(max_tokens=2))["choices"][0]

    assert (choice["message"]["content"], choice["finish_reason"]) == ("Mock reply", "length")


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    choice = complete(chat(max_tokens=1, max_completion_tokens=3))["choices"][0]

    assert choice["message"]["content"] == "Mock reply to:"


def test_stop_sequence_cuts_the_reply_before_it() -> None:
    choice = complete(chat(stop=["to:"]))["choices"][0]

    assert (choice["message"]["content"], choice["finish_reason"]) == ("Mock reply ", "stop")


def test_tools_produce_a_call_with_required_arguments() -> None:
    choice = complete(chat(tools=[WEATHER_TOOL]))["choices"][0]

    call = choice["message"]["tool_calls"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert call["function"]["name"] == "get_weather"
    assert orjson.loads(call["function"]["arguments"]) == {
        "city": "mock",
        "days": 1,
        "metric": True,
    }


def test_tool_choice_none_answers_with_text() -> None:
    choice = complete(chat(tools=[WEATHER_TOOL], tool_choice="none"))["choices"][0]

    assert choice["finish_reason"] == "stop"


def test_forced_tool_choice_calls_the_named_function() -> None:
    forced = {"type": "function", "function": {"name": "get_time"}}

    choice = complete(chat(tools=[WEATHER_TOOL, TIME_TOOL], tool_choice=forced))["choices"][0]

    assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_time"


def test_forcing_an_undeclared_function_is_a_bad_request() -> None:
    forced = {"type": "function", "function": {"name": "nope"}}

    with pytest.raises(BadRequestError) as caught:
        plan_chat(chat(tools=[WEATHER_TOOL], tool_choice=forced), SETTINGS)

    assert caught.value.param == "tool_choice"


def test_tool_result_message_gets_a_text_reply_mentioning_it() -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny and 21C"},
    ]

    choice = complete(chat(messages=messages, tools=[WEATHER_TOOL]))["choices"][0]

    assert choice["finish_reason"] == "stop"
    assert "sunny and 21C" in choice["message"]["content"]


def test_streamed_tool_call_opens_with_name_then_streams_arguments() -> None:
    unary = complete(chat(tools=[WEATHER_TOOL]))["choices"][0]["message"]["tool_calls"][0]

    chunks = stream(chat(tools=[WEATHER_TOOL], stream=True))

    opening = chunks[0]["choices"][0]["delta"]["tool_calls"][0]
    fragments = [
        chunk["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
        for chunk in chunks[1:]
        if chunk["choices"][0]["delta"].get("tool_calls")
    ]
    assert (opening["index"], opening["type"], opening["function"]) == (
        0,
        "function",
        {"name": "get_weather", "arguments": ""},
    )
    assert opening["id"].startswith("call_")
    assert "".join(fragments) == unary["function"]["arguments"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_json_schema_format_returns_an_object_with_required_properties() -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": schema, "strict": True},
    }

    content = complete(chat(response_format=fmt))["choices"][0]["message"]["content"]

    assert orjson.loads(content) == {"name": "mock", "age": 1}


def test_json_object_format_returns_a_json_object() -> None:
    content = complete(chat(response_format={"type": "json_object"}))["choices"][0]["message"][
        "content"
    ]

    assert orjson.loads(content) == {"reply": "Mock reply to: hello there"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m", "messages": [{"content": "x"}]}, "messages[0]"),
        ({"model": "m", "messages": [{"role": "user"}], "n": 0}, "n"),
        ({"model": "m", "messages": [{"role": "user"}], "stream_options": {}}, "stream_options"),
    ],
)
def test_invalid_chat_requests_name_the_bad_parameter(body: dict[str, Any], param: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        plan_chat(body, SETTINGS)

    assert caught.value.param == param


def embed(**fields: Any) -> dict[str, Any]:
    return embeddings_response(
        plan_embeddings({"model": "text-embedding-3-small", **fields}, SETTINGS)
    )


def test_embeddings_parse_as_sdk_response_without_unknown_fields() -> None:
    response = CreateEmbeddingResponse.model_validate(embed(input=["a", "b"]))

    assert_no_unknown_fields(response)
    assert [item.index for item in response.data] == [0, 1]


def test_base64_embedding_decodes_to_the_float_embedding() -> None:
    floats = embed(input="same text")["data"][0]["embedding"]
    encoded = embed(input="same text", encoding_format="base64")["data"][0]["embedding"]

    raw = base64.b64decode(encoded)
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == floats


def test_embedding_is_deterministic_per_text_and_differs_between_texts() -> None:
    first, second, other = (embed(input=text)["data"][0]["embedding"] for text in ("a", "a", "b"))

    assert first == second
    assert first != other


def test_embedding_honours_dimensions_and_is_unit_length() -> None:
    vector = embed(input="x", dimensions=32)["data"][0]["embedding"]

    assert len(vector) == 32
    assert sum(value * value for value in vector) == pytest.approx(1.0, abs=1e-5)


def test_token_array_input_counts_one_token_per_id() -> None:
    response = embed(input=[[1, 2, 3], [4, 5]])

    assert len(response["data"]) == 2
    assert response["usage"] == {"prompt_tokens": 5, "total_tokens": 5}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"input": ""}, "input"),
        ({"input": []}, "input"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({}, "input"),
    ],
)
def test_invalid_embedding_requests_name_the_bad_parameter(
    fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(BadRequestError) as caught:
        plan_embeddings({"model": "m", **fields}, SETTINGS)

    assert caught.value.param == param


def test_models_list_has_model_objects() -> None:
    models = models_response()

    assert models["object"] == "list"
    assert {
        "id": "gpt-4o-mini",
        "object": "model",
        "created": 1_700_000_000,
        "owned_by": "openai",
    } in models["data"]
