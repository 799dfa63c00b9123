"""Gemini responses and stream events → OpenAI chat.completion and chat.completion.chunk."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from anygate.core.translate import GeminiStreamToChat, gemini_response_to_chat
from anygate.workers.assemble import assemble_chat_completion

META = {"model": "gemini-2.5-flash", "response_id": "chatcmpl-1", "created": 1700000000}
USAGE = {"promptTokenCount": 5, "candidatesTokenCount": 7, "totalTokenCount": 12}
CALL = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}


def candidate(
    parts: list[dict[str, Any]], finish: str | None = "STOP", index: int = 0
) -> dict[str, Any]:
    out: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": index}
    if finish is not None:
        out["finishReason"] = finish
    return out


def response(*candidates: dict[str, Any], usage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "candidates": list(candidates),
        "usageMetadata": usage or USAGE,
        "modelVersion": "gemini-2.5-flash",
        "responseId": "abc",
    }


def unary(resp: dict[str, Any]) -> dict[str, Any]:
    return gemini_response_to_chat(resp, **META)


def first_message(resp: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = unary(resp)["choices"][0]["message"]
    return message


def streamed(*events: dict[str, Any]) -> list[dict[str, Any]]:
    translator = GeminiStreamToChat(**META)
    chunks = [chunk for event in events for chunk in translator.feed(event)]
    return chunks + translator.close()


class TestUnary:
    def test_text_answer_is_a_valid_chat_completion(self) -> None:
        result = unary(response(candidate([{"text": "Hello"}])))
        ChatCompletion.model_validate(result)
        assert result["object"] == "chat.completion"
        assert (result["id"], result["model"], result["created"]) == (
            "chatcmpl-1",
            "gemini-2.5-flash",
            1700000000,
        )
        assert result["choices"] == [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello"},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ]

    def test_text_parts_are_concatenated(self) -> None:
        result = unary(response(candidate([{"text": "Hel"}, {"text": "lo"}])))
        assert result["choices"][0]["message"]["content"] == "Hello"

    def test_thought_parts_are_not_answer_text(self) -> None:
        parts = [{"text": "thinking...", "thought": True}, {"text": "Answer"}]
        assert first_message(response(candidate(parts)))["content"] == "Answer"

    def test_candidates_become_choices_in_order(self) -> None:
        result = unary(response(candidate([{"text": "b"}], index=1), candidate([{"text": "a"}])))
        assert [c["message"]["content"] for c in result["choices"]] == ["a", "b"]
        assert [c["index"] for c in result["choices"]] == [0, 1]

    def test_function_call_becomes_a_tool_call(self) -> None:
        result = unary(response(candidate([CALL])))
        ChatCompletion.model_validate(result)
        choice = result["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        assert choice["message"]["content"] is None
        (call,) = choice["message"]["tool_calls"]
        assert call["type"] == "function"
        assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}

    def test_geminis_own_call_id_is_kept(self) -> None:
        part = {"functionCall": {**CALL["functionCall"], "id": "g-1"}}
        assert first_message(response(candidate([part])))["tool_calls"][0]["id"] == "g-1"

    def test_missing_call_id_is_deterministic_and_prefixed(self) -> None:
        first = first_message(response(candidate([CALL])))["tool_calls"][0]["id"]
        again = first_message(response(candidate([CALL])))["tool_calls"][0]["id"]
        assert first == again
        assert first.startswith("call_")
        assert len(first) == len("call_") + 24

    def test_parallel_identical_calls_get_distinct_ids(self) -> None:
        calls = first_message(response(candidate([CALL, CALL])))["tool_calls"]
        assert calls[0]["id"] != calls[1]["id"]

    def test_thought_signature_is_carried_as_extra_content(self) -> None:
        part = {**CALL, "thoughtSignature": "c2ln"}
        call = first_message(response(candidate([part])))["tool_calls"][0]
        assert call["extra_content"] == {"google": {"thought_signature": "c2ln"}}

    def test_text_with_a_call_keeps_both(self) -> None:
        message = first_message(response(candidate([{"text": "Let me check."}, CALL])))
        assert message["content"] == "Let me check."
        assert len(message["tool_calls"]) == 1

    def test_blocked_prompt_is_one_content_filter_choice(self) -> None:
        resp = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": USAGE}
        result = unary(resp)
        assert result["choices"] == [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None},
                "finish_reason": "content_filter",
                "logprobs": None,
            }
        ]

    def test_safety_stop_without_content_has_null_content(self) -> None:
        result = unary(response({"finishReason": "SAFETY", "index": 0}))
        assert result["choices"][0]["message"]["content"] is None
        assert result["choices"][0]["finish_reason"] == "content_filter"


class TestFinishReasons:
    @pytest.mark.parametrize(
        ("gemini", "openai"),
        [
            ("STOP", "stop"),
            ("MAX_TOKENS", "length"),
            ("SAFETY", "content_filter"),
            ("RECITATION", "content_filter"),
            ("LANGUAGE", "content_filter"),
            ("BLOCKLIST", "content_filter"),
            ("PROHIBITED_CONTENT", "content_filter"),
            ("SPII", "content_filter"),
            ("IMAGE_SAFETY", "content_filter"),
            ("IMAGE_PROHIBITED_CONTENT", "content_filter"),
            ("IMAGE_RECITATION", "content_filter"),
            ("OTHER", "stop"),
            ("FINISH_REASON_UNSPECIFIED", "stop"),
            ("MALFORMED_FUNCTION_CALL", "stop"),
            ("UNEXPECTED_TOOL_CALL", "stop"),
            ("SOMETHING_NEW", "stop"),
        ],
    )
    def test_finish_reason_maps(self, gemini: str, openai: str) -> None:
        result = unary(response(candidate([{"text": "x"}], finish=gemini)))
        assert result["choices"][0]["finish_reason"] == openai

    def test_max_tokens_with_a_call_stays_length(self) -> None:
        result = unary(response(candidate([CALL], finish="MAX_TOKENS")))
        assert result["choices"][0]["finish_reason"] == "length"


class TestUsage:
    def test_counts_map_to_openai_names(self) -> None:
        assert unary(response(candidate([{"text": "x"}])))["usage"] == {
            "prompt_tokens": 5,
            "completion_tokens": 7,
            "total_tokens": 12,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }

    def test_thoughts_count_as_completion_and_as_reasoning(self) -> None:
        usage = {**USAGE, "thoughtsTokenCount": 30, "totalTokenCount": 42}
        result = unary(response(candidate([{"text": "x"}]), usage=usage))["usage"]
        assert result["completion_tokens"] == 37
        assert result["completion_tokens_details"] == {"reasoning_tokens": 30}
        assert result["total_tokens"] == 42

    def test_cached_tokens_are_reported(self) -> None:
        usage = {**USAGE, "cachedContentTokenCount": 4}
        result = unary(response(candidate([{"text": "x"}]), usage=usage))["usage"]
        assert result["prompt_tokens_details"] == {"cached_tokens": 4}

    def test_tool_use_prompt_tokens_count_as_prompt(self) -> None:
        usage = {**USAGE, "toolUsePromptTokenCount": 3, "totalTokenCount": 15}
        result = unary(response(candidate([{"text": "x"}]), usage=usage))["usage"]
        assert result["prompt_tokens"] == 8
        assert result["prompt_tokens"] + result["completion_tokens"] == result["total_tokens"]

    def test_total_is_the_providers_not_a_sum(self) -> None:
        usage = {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 9}
        assert (
            unary(response(candidate([{"text": "x"}]), usage=usage))["usage"]["total_tokens"] == 9
        )


def text_events() -> list[dict[str, Any]]:
    return [
        response(candidate([{"text": "Hel"}], finish=None), usage={"promptTokenCount": 5}),
        response(candidate([{"text": "lo"}], finish=None), usage={"promptTokenCount": 5}),
        response(candidate([{"text": "!"}])),
    ]


class TestStream:
    def test_every_chunk_is_a_valid_openai_chunk(self) -> None:
        for chunk in streamed(*text_events()):
            ChatCompletionChunk.model_validate(chunk)
            assert chunk["object"] == "chat.completion.chunk"
            assert chunk["id"] == "chatcmpl-1"

    def test_first_chunk_carries_the_role(self) -> None:
        first = streamed(*text_events())[0]["choices"][0]["delta"]
        assert first == {"role": "assistant", "content": "Hel"}

    def test_later_chunks_carry_only_text(self) -> None:
        assert streamed(*text_events())[1]["choices"][0]["delta"] == {"content": "lo"}

    def test_finish_reason_comes_on_the_last_choice_chunk(self) -> None:
        chunks = streamed(*text_events())
        finishing = chunks[-2]["choices"][0]
        assert (finishing["delta"], finishing["finish_reason"]) == ({}, "stop")
        assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-2])

    def test_close_emits_the_usage_chunk_with_the_last_counts(self) -> None:
        last = streamed(*text_events())[-1]
        assert last["choices"] == []
        assert last["usage"]["prompt_tokens"] == 5
        assert last["usage"]["completion_tokens"] == 7

    def test_close_emits_usage_even_without_counts(self) -> None:
        translator = GeminiStreamToChat(**META)
        (last,) = translator.close()
        assert last["usage"]["total_tokens"] == 0

    def test_streamed_text_assembles_to_the_unary_result(self) -> None:
        whole = response(candidate([{"text": "Hello!"}]))
        assert assemble_chat_completion(streamed(*text_events())) == unary(whole)

    def test_function_call_is_one_complete_tool_call_delta(self) -> None:
        chunks = streamed(response(candidate([CALL])))
        delta = chunks[0]["choices"][0]["delta"]
        (call,) = delta["tool_calls"]
        assert call["index"] == 0
        assert call["id"].startswith("call_")
        assert call["type"] == "function"
        assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
        assert chunks[1]["choices"][0]["finish_reason"] == "tool_calls"

    def test_calls_across_events_get_increasing_indexes(self) -> None:
        other = {"functionCall": {"name": "get_time", "args": {}}}
        chunks = streamed(response(candidate([CALL], finish=None)), response(candidate([other])))
        indexes = [c["choices"][0]["delta"]["tool_calls"][0]["index"] for c in chunks[:2]]
        assert indexes == [0, 1]

    def test_streamed_calls_assemble_to_the_unary_result(self) -> None:
        signed = {**CALL, "thoughtSignature": "c2ln"}
        chunks = streamed(
            response(candidate([{"text": "Checking."}], finish=None)),
            response(candidate([signed])),
        )
        assembled = assemble_chat_completion(chunks)
        expected = unary(response(candidate([{"text": "Checking."}, signed])))
        for call in expected["choices"][0]["message"]["tool_calls"]:
            del call["extra_content"]  # assemble keeps OpenAI's fields; the adapter re-adds it
        assert assembled == expected

    def test_candidates_stream_as_separate_choices(self) -> None:
        chunks = streamed(
            response(candidate([{"text": "a"}], index=0), candidate([{"text": "b"}], index=1))
        )
        assembled = assemble_chat_completion(chunks)
        assert [c["message"]["content"] for c in assembled["choices"]] == ["a", "b"]
        assert [c["finish_reason"] for c in assembled["choices"]] == ["stop", "stop"]

    def test_blocked_prompt_streams_one_content_filter_chunk(self) -> None:
        chunks = streamed({"promptFeedback": {"blockReason": "OTHER"}})
        assert chunks[0]["choices"][0] == {
            "index": 0,
            "delta": {"role": "assistant"},
            "finish_reason": "content_filter",
            "logprobs": None,
        }

    def test_stream_is_finished_only_after_a_finish_reason(self) -> None:
        translator = GeminiStreamToChat(**META)
        assert not translator.finished
        translator.feed(text_events()[0])
        assert not translator.finished
        translator.feed(text_events()[2])
        assert translator.finished

    def test_a_candidate_without_finish_leaves_the_stream_unfinished(self) -> None:
        translator = GeminiStreamToChat(**META)
        translator.feed(
            response(candidate([{"text": "a"}], index=0), candidate([{"text": "b"}], None, 1))
        )
        assert not translator.finished

    def test_usage_only_event_produces_no_chunk(self) -> None:
        translator = GeminiStreamToChat(**META)
        assert translator.feed({"usageMetadata": USAGE}) == []
        assert translator.close()[0]["usage"]["prompt_tokens"] == 5

    def test_events_after_a_candidate_finished_are_ignored(self) -> None:
        chunks = streamed(
            response(candidate([{"text": "a"}])), response(candidate([{"text": "b"}]))
        )
        assert assemble_chat_completion(chunks)["choices"][0]["message"]["content"] == "a"
