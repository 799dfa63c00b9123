"""The Gemini-shaped builders, checked against google-genai types (which forbid unknown keys)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from google.genai import types

from anygate.ops.mock_provider.common import BadRequestError
from anygate.ops.mock_provider.gemini_wire import (
    batch_embed_response,
    count_tokens_response,
    embed_content_response,
    error_body,
    fault_error,
    generate_response,
    invalid_key_error,
    model_object,
    models_response,
    plan_generate,
    stream_chunks,
)
from anygate.ops.mock_provider.settings import MockSettings

SETTINGS = MockSettings()
WEATHER = {
    "name": "get_weather",
    "parameters": {
        "type": "OBJECT",
        "properties": {"city": {"type": "STRING"}, "days": {"type": "INTEGER"}},
        "required": ["city", "days"],
    },
}
TIME = {"name": "get_time", "parametersJsonSchema": {"type": "object", "properties": {}}}


def request(**fields: Any) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}], **fields}


def generate(body: dict[str, Any], settings: MockSettings = SETTINGS) -> dict[str, Any]:
    return generate_response(plan_generate(body, "gemini-2.5-flash", settings), response_id="r1")


def stream(body: dict[str, Any], settings: MockSettings = SETTINGS) -> list[dict[str, Any]]:
    return stream_chunks(plan_generate(body, "gemini-2.5-flash", settings), response_id="r1")


def streamed_text(chunks: list[dict[str, Any]], index: int = 0) -> str:
    return "".join(
        part.get("text", "")
        for chunk in chunks
        for candidate in chunk["candidates"]
        if candidate["index"] == index
        for part in candidate["content"]["parts"]
    )


def test_response_validates_as_sdk_generate_content_response() -> None:
    response = types.GenerateContentResponse.model_validate(generate(request()))

    assert response.text == "Mock reply to: hello there"
    assert response.candidates is not None
    assert response.candidates[0].finish_reason == types.FinishReason.STOP


def test_usage_metadata_counts_prompt_and_candidate_words() -> None:
    usage = generate(request(systemInstruction={"parts": [{"text": "be brief"}]}))["usageMetadata"]

    assert (usage["promptTokenCount"], usage["candidatesTokenCount"], usage["totalTokenCount"]) == (
        4,
        5,
        9,
    )


def test_fixed_token_settings_override_counted_usage() -> None:
    usage = generate(request(), MockSettings(prompt_tokens=10, completion_tokens=3))[
        "usageMetadata"
    ]

    assert (usage["promptTokenCount"], usage["candidatesTokenCount"], usage["totalTokenCount"]) == (
        10,
        3,
        13,
    )


def test_stream_chunks_validate_and_concatenate_to_the_unary_text() -> None:
    unary = generate(request())["candidates"][0]["content"]["parts"][0]["text"]

    chunks = stream(request())

    for chunk in chunks:
        types.GenerateContentResponse.model_validate(chunk)
    assert streamed_text(chunks) == unary


def test_stream_has_chunk_count_chunks_and_only_the_last_finishes() -> None:
    chunks = stream(request(), MockSettings(chunk_count=5))

    assert len(chunks) == 5
    assert [("finishReason" in chunk["candidates"][0]) for chunk in chunks] == [False] * 4 + [True]


def test_only_the_last_stream_chunk_reports_candidate_tokens() -> None:
    chunks = stream(request())

    assert "candidatesTokenCount" not in chunks[0]["usageMetadata"]
    assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] == 5


def test_candidate_count_returns_indexed_candidates() -> None:
    candidates = generate(request(generationConfig={"candidateCount": 2}))["candidates"]

    assert [candidate["index"] for candidate in candidates] == [0, 1]


def test_max_output_tokens_truncates_with_max_tokens_finish() -> None:
    candidate = generate(request(generationConfig={"maxOutputTokens": 2}))["candidates"][0]

    assert candidate["content"]["parts"][0]["text"] == "Mock reply"
    assert candidate["finishReason"] == "MAX_TOKENS"


def test_stop_sequences_cut_the_reply() -> None:
    candidate = generate(request(generationConfig={"stopSequences": [" to"]}))["candidates"][0]

    assert candidate["content"]["parts"][0]["text"] == "Mock reply"


def test_function_declarations_produce_a_function_call_part() -> None:
    response = types.GenerateContentResponse.model_validate(
        generate(request(tools=[{"functionDeclarations": [WEATHER]}]))
    )

    assert response.function_calls is not None
    assert response.function_calls[0].name == "get_weather"
    assert response.function_calls[0].args == {"city": "mock", "days": 1}


def test_function_calling_mode_none_answers_with_text() -> None:
    body = request(
        tools=[{"functionDeclarations": [WEATHER]}],
        toolConfig={"functionCallingConfig": {"mode": "NONE"}},
    )

    assert generate(body)["candidates"][0]["content"]["parts"][0]["text"].startswith("Mock reply")


def test_allowed_function_names_pick_the_called_function() -> None:
    body = request(
        tools=[{"functionDeclarations": [WEATHER, TIME]}],
        toolConfig={"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}},
    )

    part = generate(body)["candidates"][0]["content"]["parts"][0]

    assert part == {"functionCall": {"name": "get_time", "args": {}}}


def test_streamed_function_call_arrives_whole_in_one_chunk() -> None:
    chunks = stream(request(tools=[{"functionDeclarations": [WEATHER]}]))

    assert len(chunks) == 1
    assert (
        chunks[0]["candidates"][0]["content"]["parts"][0]["functionCall"]["name"] == "get_weather"
    )
    assert chunks[0]["candidates"][0]["finishReason"] == "STOP"


def test_function_response_gets_a_text_reply_mentioning_it() -> None:
    contents = [
        {"role": "user", "parts": [{"text": "weather?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {}}}]},
        {
            "role": "user",
            "parts": [{"functionResponse": {"name": "get_weather", "response": {"sky": "clear"}}}],
        },
    ]

    text = generate({"contents": contents, "tools": [{"functionDeclarations": [WEATHER]}]})[
        "candidates"
    ][0]["content"]["parts"][0]["text"]

    assert "get_weather" in text
    assert "clear" in text


def test_json_mime_type_with_openapi_schema_returns_matching_json() -> None:
    schema = {
        "type": "OBJECT",
        "properties": {
            "title": {"type": "STRING"},
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}},
        },
        "required": ["title", "tags"],
    }
    config = {"responseMimeType": "application/json", "responseSchema": schema}

    text = generate(request(generationConfig=config))["candidates"][0]["content"]["parts"][0][
        "text"
    ]

    assert orjson.loads(text) == {"title": "mock", "tags": ["mock"]}


def test_json_mime_type_with_json_schema_returns_matching_json() -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    config = {"responseMimeType": "application/json", "responseJsonSchema": schema}

    text = generate(request(generationConfig=config))["candidates"][0]["content"]["parts"][0][
        "text"
    ]

    assert orjson.loads(text) == {"ok": True}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"contents": []},
        {"contents": [{"role": "user"}]},
        request(generationConfig={"candidateCount": 0}),
        request(generationConfig={"stopSequences": "x"}),
    ],
)
def test_invalid_generate_requests_are_bad_requests(body: dict[str, Any]) -> None:
    with pytest.raises(BadRequestError):
        plan_generate(body, "gemini-2.5-flash", SETTINGS)


def test_embed_content_returns_values_of_the_requested_dimension() -> None:
    body = {"content": {"parts": [{"text": "x"}]}, "outputDimensionality": 16}

    response = embed_content_response(body, SETTINGS)

    assert len(response["embedding"]["values"]) == 16
    types.SingleEmbedContentResponse.model_validate(response)


def test_batch_embed_returns_one_embedding_per_request() -> None:
    requests = [
        {"model": "models/e", "content": {"parts": [{"text": text}]}} for text in ("a", "b", "a")
    ]

    embeddings = batch_embed_response({"requests": requests}, SETTINGS)["embeddings"]

    types.EmbedContentResponse.model_validate({"embeddings": embeddings})
    assert len(embeddings) == 3
    assert embeddings[0] == embeddings[2] != embeddings[1]


def test_count_tokens_counts_words_of_contents_or_nested_request() -> None:
    direct = count_tokens_response(request(), SETTINGS)
    nested = count_tokens_response({"generateContentRequest": request()}, SETTINGS)

    assert direct["totalTokens"] == nested["totalTokens"] == 2


def test_rate_limit_fault_carries_retry_info() -> None:
    error = fault_error(429, 3)["error"]

    assert (error["code"], error["status"]) == (429, "RESOURCE_EXHAUSTED")
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3s"} in error[
        "details"
    ]


def test_invalid_key_error_matches_google_shape() -> None:
    error = invalid_key_error()["error"]

    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert error["details"][0]["reason"] == "API_KEY_INVALID"


def test_error_body_names_status_from_code() -> None:
    assert error_body(503, "busy") == {
        "error": {"code": 503, "message": "busy", "status": "UNAVAILABLE"}
    }


def test_models_page_through_the_catalogue() -> None:
    first = models_response(2, None)
    second = models_response(2, first["nextPageToken"])

    assert len(first["models"]) == len(second["models"]) == 2
    assert first["models"][0]["name"] != second["models"][0]["name"]


def test_model_object_lists_generation_methods() -> None:
    model = model_object("gemini-2.5-flash")

    assert model["name"] == "models/gemini-2.5-flash"
    assert "generateContent" in model["supportedGenerationMethods"]
