"""OpenAI chat.completion and chunks → Gemini GenerateContentResponse (whole and streamed)."""

from __future__ import annotations

from typing import Any

import pytest
from google.genai import models, types

from anygate.core.translate import ChatStreamToGemini, chat_response_to_gemini
from tests.support.chunks import chunk

USAGE = {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
}


def completion(*choices: dict[str, Any], usage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": list(choices),
        "usage": usage or USAGE,
    }


def choice(message: dict[str, Any], finish: str | None = "stop", index: int = 0) -> dict[str, Any]:
    return {
        "index": index,
        "message": {"role": "assistant", **message},
        "finish_reason": finish,
        "logprobs": None,
    }


USAGE_CHUNK = {"id": "chatcmpl-1", "model": "gpt-4o-mini", "choices": [], "usage": USAGE}


def sdk(resp: dict[str, Any]) -> types.GenerateContentResponse:
    """Parse as google-genai does, so the SDK's own accessors are what is checked."""
    parsed = models._GenerateContentResponse_from_mldev(resp)
    return types.GenerateContentResponse._from_response(response=parsed, kwargs={})


def stream(*chunks: dict[str, Any]) -> list[dict[str, Any]]:
    translator = ChatStreamToGemini()
    out = [piece for c in chunks for piece in translator.feed(c)]
    return out + translator.close()


class TestWhole:
    def test_text_answer_parses_in_the_sdk(self) -> None:
        parsed = sdk(chat_response_to_gemini(completion(choice({"content": "Hello"}))))
        assert parsed.text == "Hello"
        assert parsed.candidates is not None
        assert parsed.candidates[0].finish_reason == types.FinishReason.STOP
        assert parsed.model_version == "gpt-4o-mini"
        assert parsed.response_id == "chatcmpl-1"

    def test_candidate_shape(self) -> None:
        out = chat_response_to_gemini(completion(choice({"content": "Hello"})))
        assert out["candidates"] == [
            {
                "content": {"role": "model", "parts": [{"text": "Hello"}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ]

    def test_usage_maps_to_usage_metadata(self) -> None:
        out = chat_response_to_gemini(completion(choice({"content": "x"})))
        assert out["usageMetadata"] == {
            "promptTokenCount": 5,
            "candidatesTokenCount": 7,
            "totalTokenCount": 12,
        }

    def test_reasoning_tokens_become_thoughts(self) -> None:
        usage = {**USAGE, "completion_tokens_details": {"reasoning_tokens": 3}}
        meta = chat_response_to_gemini(completion(choice({"content": "x"}), usage=usage))
        meta = meta["usageMetadata"]
        assert (meta["candidatesTokenCount"], meta["thoughtsTokenCount"]) == (4, 3)

    def test_cached_tokens_become_cached_content_count(self) -> None:
        usage = {**USAGE, "prompt_tokens_details": {"cached_tokens": 2}}
        meta = chat_response_to_gemini(completion(choice({"content": "x"}), usage=usage))
        meta = meta["usageMetadata"]
        assert meta["cachedContentTokenCount"] == 2

    def test_tool_calls_become_function_calls_with_their_ids(self) -> None:
        out = chat_response_to_gemini(
            completion(choice({"content": None, "tool_calls": [CALL]}, "tool_calls"))
        )
        parsed = sdk(out)
        assert parsed.function_calls is not None
        (call,) = parsed.function_calls
        assert (call.id, call.name, call.args) == ("call_1", "get_weather", {"city": "Paris"})
        assert out["candidates"][0]["finishReason"] == "STOP"

    def test_thought_signature_returns_to_the_part(self) -> None:
        signed = {**CALL, "extra_content": {"google": {"thought_signature": "c2ln"}}}
        out = chat_response_to_gemini(completion(choice({"tool_calls": [signed]}, "tool_calls")))
        assert out["candidates"][0]["content"]["parts"][0]["thoughtSignature"] == "c2ln"

    def test_arguments_that_are_not_json_are_kept_as_text(self) -> None:
        broken = {**CALL, "function": {"name": "f", "arguments": "{oops"}}
        out = chat_response_to_gemini(completion(choice({"tool_calls": [broken]}, "tool_calls")))
        args = out["candidates"][0]["content"]["parts"][0]["functionCall"]["args"]
        assert args == {"_unparsed_arguments": "{oops"}

    def test_refusal_is_answer_text(self) -> None:
        out = chat_response_to_gemini(completion(choice({"content": None, "refusal": "No."})))
        assert sdk(out).text == "No."

    def test_choices_become_candidates(self) -> None:
        out = chat_response_to_gemini(
            completion(choice({"content": "a"}), choice({"content": "b"}, index=1))
        )
        assert [c["index"] for c in out["candidates"]] == [0, 1]

    @pytest.mark.parametrize(
        ("openai", "gemini"),
        [
            ("stop", "STOP"),
            ("length", "MAX_TOKENS"),
            ("tool_calls", "STOP"),
            ("function_call", "STOP"),
            ("content_filter", "SAFETY"),
            ("something_new", "OTHER"),
        ],
    )
    def test_finish_reason_maps(self, openai: str, gemini: str) -> None:
        out = chat_response_to_gemini(completion(choice({"content": "x"}, openai)))
        assert out["candidates"][0]["finishReason"] == gemini

    def test_filtered_answer_without_content_has_no_content(self) -> None:
        out = chat_response_to_gemini(completion(choice({"content": None}, "content_filter")))
        assert out["candidates"][0] == {"finishReason": "SAFETY", "index": 0}

    def test_empty_answer_still_has_a_text_part(self) -> None:
        out = chat_response_to_gemini(completion(choice({"content": ""})))
        assert sdk(out).text == ""


class TestStream:
    def test_text_deltas_become_text_chunks_as_they_come(self) -> None:
        translator = ChatStreamToGemini()
        assert translator.feed(chunk({"role": "assistant", "content": ""})) == []
        (piece,) = translator.feed(chunk({"content": "Hel"}))
        assert piece["candidates"] == [
            {"content": {"role": "model", "parts": [{"text": "Hel"}]}, "index": 0}
        ]
        assert (piece["modelVersion"], piece["responseId"]) == ("gpt-4o-mini", "chatcmpl-1")

    def test_finish_and_usage_arrive_on_one_final_chunk(self) -> None:
        out = stream(chunk({"content": "Hi"}), chunk({}, "stop"), USAGE_CHUNK)
        final = out[-1]
        assert final["candidates"][0]["finishReason"] == "STOP"
        assert final["usageMetadata"]["totalTokenCount"] == 12
        assert len(out) == 2

    def test_final_chunk_text_is_empty_not_missing(self) -> None:
        final = stream(chunk({"content": "Hi"}), chunk({}, "stop"), USAGE_CHUNK)[-1]
        assert sdk(final).text == ""

    def test_every_piece_parses_in_the_sdk_and_text_adds_up(self) -> None:
        out = stream(
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hel"}),
            chunk({"content": "lo"}),
            chunk({}, "stop"),
            USAGE_CHUNK,
        )
        assert "".join(sdk(piece).text or "" for piece in out) == "Hello"

    def test_finish_without_usage_is_flushed_by_close(self) -> None:
        out = stream(chunk({"content": "Hi"}), chunk({}, "length"))
        assert out[-1]["candidates"][0]["finishReason"] == "MAX_TOKENS"
        assert "usageMetadata" not in out[-1]

    def test_tool_call_is_emitted_whole_once_complete(self) -> None:
        translator = ChatStreamToGemini()
        opening = {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        }
        assert translator.feed(chunk({"tool_calls": [opening]})) == []
        more = {"index": 0, "function": {"arguments": '{"city":'}}
        assert translator.feed(chunk({"tool_calls": [more]})) == []
        rest = {"index": 0, "function": {"arguments": '"Paris"}'}}
        assert translator.feed(chunk({"tool_calls": [rest]})) == []
        assert translator.feed(chunk({}, "tool_calls")) == []
        (final,) = translator.feed(USAGE_CHUNK)
        assert final["candidates"][0]["content"]["parts"] == [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"}}
        ]
        assert final["candidates"][0]["finishReason"] == "STOP"

    def test_a_new_call_index_completes_the_previous_call(self) -> None:
        translator = ChatStreamToGemini()
        first = {**CALL, "index": 0}
        second = {
            "index": 1,
            "id": "call_2",
            "type": "function",
            "function": {"name": "get_time", "arguments": "{}"},
        }
        assert translator.feed(chunk({"tool_calls": [first]})) == []
        (piece,) = translator.feed(chunk({"tool_calls": [second]}))
        assert piece["candidates"][0]["content"]["parts"][0]["functionCall"]["id"] == "call_1"

    def test_unfinished_call_is_flushed_by_close(self) -> None:
        translator = ChatStreamToGemini()
        translator.feed(chunk({"tool_calls": [{**CALL, "index": 0}]}))
        (piece,) = translator.close()
        assert piece["candidates"][0]["content"]["parts"][0]["functionCall"]["name"] == (
            "get_weather"
        )

    def test_choices_stream_as_candidates(self) -> None:
        out = stream(
            chunk({"content": "a"}, index=0),
            chunk({"content": "b"}, index=1),
            chunk({}, "stop", index=0),
            chunk({}, "stop", index=1),
            USAGE_CHUNK,
        )
        assert [piece["candidates"][0]["index"] for piece in out] == [0, 1, 0, 1]
        assert "usageMetadata" in out[-1]
        assert "usageMetadata" not in out[-2]

    def test_usage_without_a_held_finish_is_a_usage_only_chunk(self) -> None:
        (piece,) = ChatStreamToGemini().feed(USAGE_CHUNK)
        assert piece["candidates"] == []
        assert piece["usageMetadata"]["promptTokenCount"] == 5

    def test_close_on_an_empty_stream_is_empty(self) -> None:
        assert ChatStreamToGemini().close() == []
