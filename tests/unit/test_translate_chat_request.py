"""OpenAI chat request → Gemini GenerateContentRequest: every field translated or refused."""

from __future__ import annotations

from typing import Any

import pytest

from anygate.broker.errors import InvalidRequestError
from anygate.core.translate import UntranslatableFieldError, chat_request_to_gemini

USER = {"role": "user", "content": "Hi"}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


def translate(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "gemini-2.5-flash", "messages": [USER]}
    body.update(fields)
    return chat_request_to_gemini(body)


def config(**fields: Any) -> dict[str, Any]:
    result: dict[str, Any] = translate(**fields).get("generationConfig", {})
    return result


def refused(body_fields: dict[str, Any]) -> UntranslatableFieldError:
    with pytest.raises(UntranslatableFieldError) as caught:
        translate(**body_fields)
    return caught.value


class TestMessages:
    def test_user_text_becomes_a_user_turn(self) -> None:
        assert translate()["contents"] == [{"role": "user", "parts": [{"text": "Hi"}]}]

    def test_model_is_not_part_of_the_body(self) -> None:
        assert "model" not in translate()

    def test_system_message_becomes_system_instruction(self) -> None:
        out = translate(messages=[{"role": "system", "content": "Be terse"}, USER])
        assert out["systemInstruction"] == {"parts": [{"text": "Be terse"}]}
        assert out["contents"] == [{"role": "user", "parts": [{"text": "Hi"}]}]

    def test_developer_message_becomes_system_instruction(self) -> None:
        out = translate(messages=[{"role": "developer", "content": "Be terse"}, USER])
        assert out["systemInstruction"] == {"parts": [{"text": "Be terse"}]}

    def test_several_system_messages_are_joined_in_order(self) -> None:
        out = translate(
            messages=[
                {"role": "system", "content": "One"},
                USER,
                {"role": "developer", "content": [{"type": "text", "text": "Two"}]},
            ]
        )
        assert out["systemInstruction"] == {"parts": [{"text": "One"}, {"text": "Two"}]}

    def test_no_system_message_means_no_system_instruction(self) -> None:
        assert "systemInstruction" not in translate()

    def test_assistant_role_becomes_model(self) -> None:
        out = translate(messages=[USER, {"role": "assistant", "content": "Hello"}, USER])
        assert [c["role"] for c in out["contents"]] == ["user", "model", "user"]
        assert out["contents"][1]["parts"] == [{"text": "Hello"}]

    def test_array_text_parts_stay_separate_parts(self) -> None:
        content = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
        out = translate(messages=[{"role": "user", "content": content}])
        assert out["contents"][0]["parts"] == [{"text": "a"}, {"text": "b"}]

    def test_assistant_refusal_is_kept_as_text(self) -> None:
        message = {"role": "assistant", "content": None, "refusal": "I can't"}
        out = translate(messages=[USER, message])
        assert out["contents"][1]["parts"] == [{"text": "I can't"}]

    def test_assistant_refusal_part_is_kept_as_text(self) -> None:
        message = {"role": "assistant", "content": [{"type": "refusal", "refusal": "No"}]}
        assert translate(messages=[USER, message])["contents"][1]["parts"] == [{"text": "No"}]

    def test_assistant_without_content_or_calls_is_refused(self) -> None:
        with pytest.raises(UntranslatableFieldError) as caught:
            translate(messages=[USER, {"role": "assistant", "content": None}])
        assert caught.value.param == "messages[1]"

    def test_only_system_messages_is_refused(self) -> None:
        with pytest.raises(UntranslatableFieldError) as caught:
            translate(messages=[{"role": "system", "content": "x"}])
        assert caught.value.param == "messages"

    def test_empty_messages_are_refused(self) -> None:
        assert refused({"messages": []}).param == "messages"

    @pytest.mark.parametrize(
        ("message", "param"),
        [
            ({"role": "user", "content": "x", "name": "bob"}, "messages[0].name"),
            ({"role": "function", "name": "f", "content": "x"}, "messages[0].role"),
            ({"role": "narrator", "content": "x"}, "messages[0].role"),
            ({"role": "user", "content": "x", "cache_control": {}}, "messages[0].cache_control"),
        ],
    )
    def test_message_fields_without_a_gemini_place_are_refused(
        self, message: dict[str, Any], param: str
    ) -> None:
        assert refused({"messages": [message]}).param == param

    def test_assistant_audio_is_refused(self) -> None:
        message = {"role": "assistant", "content": "x", "audio": {"id": "a1"}}
        assert refused({"messages": [USER, message]}).param == "messages[1].audio"

    def test_assistant_function_call_is_refused(self) -> None:
        message = {"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}}
        assert refused({"messages": [USER, message]}).param == "messages[1].function_call"

    def test_system_image_part_is_refused(self) -> None:
        content = [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}]
        err = refused({"messages": [{"role": "system", "content": content}, USER]})
        assert err.param == "messages[0].content[0].type"

    def test_refusal_names_the_field_and_why(self) -> None:
        err = refused({"logit_bias": {"1": 2}})
        assert err.param == "logit_bias"
        assert "logit_bias" in err.message
        assert "bias" in err.reason
        assert isinstance(err, InvalidRequestError)
        assert err.status == 400


class TestImagesAndMedia:
    def image(self, url: str, **extra: Any) -> list[dict[str, Any]]:
        part = {"type": "image_url", "image_url": {"url": url, **extra}}
        out = translate(messages=[{"role": "user", "content": [part]}])
        parts: list[dict[str, Any]] = out["contents"][0]["parts"]
        return parts

    def test_data_url_becomes_inline_data(self) -> None:
        parts = self.image("data:image/png;base64,iVBORw0KGgo=")
        assert parts == [{"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}]

    def test_http_url_becomes_file_data_with_type_from_extension(self) -> None:
        parts = self.image("https://example.com/cat.webp?size=2")
        assert parts == [
            {
                "fileData": {
                    "mimeType": "image/webp",
                    "fileUri": "https://example.com/cat.webp?size=2",
                }
            }
        ]

    def test_url_without_known_extension_defaults_to_jpeg(self) -> None:
        parts = self.image("http://example.com/image")
        assert parts[0]["fileData"]["mimeType"] == "image/jpeg"

    def test_other_url_schemes_are_refused(self) -> None:
        part = {"type": "image_url", "image_url": {"url": "gs://bucket/a.png"}}
        err = refused({"messages": [{"role": "user", "content": [part]}]})
        assert err.param == "messages[0].content[0].image_url.url"

    def test_data_url_without_base64_is_refused(self) -> None:
        part = {"type": "image_url", "image_url": {"url": "data:image/svg+xml,<svg/>"}}
        err = refused({"messages": [{"role": "user", "content": [part]}]})
        assert err.param == "messages[0].content[0].image_url.url"

    def test_data_url_with_broken_base64_is_refused(self) -> None:
        part = {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}
        assert refused({"messages": [{"role": "user", "content": [part]}]}).code == "invalid_value"

    def test_auto_detail_sets_no_resolution(self) -> None:
        part = {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "auto"}}
        assert "generationConfig" not in translate(messages=[{"role": "user", "content": [part]}])

    @pytest.mark.parametrize(
        ("detail", "resolution"),
        [("low", "MEDIA_RESOLUTION_LOW"), ("high", "MEDIA_RESOLUTION_HIGH")],
    )
    def test_detail_becomes_media_resolution(self, detail: str, resolution: str) -> None:
        part = {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": detail}}
        out = translate(messages=[{"role": "user", "content": [part]}])
        assert out["generationConfig"]["mediaResolution"] == resolution

    def test_conflicting_details_are_refused(self) -> None:
        low = {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "low"}}
        high = {"type": "image_url", "image_url": {"url": "https://x/b.png", "detail": "high"}}
        err = refused({"messages": [{"role": "user", "content": [low, high]}]})
        assert err.param == "messages[0].content[1].image_url.detail"

    def test_original_detail_is_refused(self) -> None:
        part = {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "original"}}
        err = refused({"messages": [{"role": "user", "content": [part]}]})
        assert err.param == "messages[0].content[0].image_url.detail"

    @pytest.mark.parametrize(("fmt", "mime"), [("wav", "audio/wav"), ("mp3", "audio/mp3")])
    def test_input_audio_becomes_inline_data(self, fmt: str, mime: str) -> None:
        part = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": fmt}}
        out = translate(messages=[{"role": "user", "content": [part]}])
        assert out["contents"][0]["parts"] == [
            {"inlineData": {"mimeType": mime, "data": "UklGRg=="}}
        ]

    def test_file_data_url_becomes_inline_data(self) -> None:
        file = {"file_data": "data:application/pdf;base64,JVBERg==", "filename": "a.pdf"}
        out = translate(messages=[{"role": "user", "content": [{"type": "file", "file": file}]}])
        assert out["contents"][0]["parts"] == [
            {"inlineData": {"mimeType": "application/pdf", "data": "JVBERg=="}}
        ]

    def test_bare_base64_pdf_is_typed_by_its_filename(self) -> None:
        file = {"file_data": "JVBERg==", "filename": "report.PDF"}
        out = translate(messages=[{"role": "user", "content": [{"type": "file", "file": file}]}])
        assert out["contents"][0]["parts"][0]["inlineData"]["mimeType"] == "application/pdf"

    def test_openai_file_id_is_refused(self) -> None:
        part = {"type": "file", "file": {"file_id": "file-abc"}}
        err = refused({"messages": [{"role": "user", "content": [part]}]})
        assert err.param == "messages[0].content[0].file.file_id"

    def test_unknown_part_type_is_refused(self) -> None:
        part = {"type": "video_url", "video_url": {"url": "https://x"}}
        err = refused({"messages": [{"role": "user", "content": [part]}]})
        assert err.param == "messages[0].content[0].type"

    def test_prompt_cache_breakpoint_on_a_part_is_accepted(self) -> None:
        part = {"type": "text", "text": "x", "prompt_cache_breakpoint": {"mode": "explicit"}}
        out = translate(messages=[{"role": "user", "content": [part]}])
        assert out["contents"][0]["parts"] == [{"text": "x"}]


class TestToolCallsAndResults:
    def conversation(self, *tail: dict[str, Any]) -> list[dict[str, Any]]:
        return [USER, {"role": "assistant", "content": None, "tool_calls": [CALL]}, *tail]

    def test_assistant_tool_calls_become_function_call_parts(self) -> None:
        out = translate(messages=self.conversation())
        assert out["contents"][1] == {
            "role": "model",
            "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}],
        }

    def test_assistant_text_and_tool_calls_share_a_turn(self) -> None:
        message = {"role": "assistant", "content": "Checking.", "tool_calls": [CALL]}
        parts = translate(messages=[USER, message])["contents"][1]["parts"]
        assert parts[0] == {"text": "Checking."}
        assert "functionCall" in parts[1]

    def test_empty_arguments_become_empty_args(self) -> None:
        call = {**CALL, "function": {"name": "get_weather", "arguments": ""}}
        out = translate(messages=[USER, {"role": "assistant", "tool_calls": [call]}])
        assert out["contents"][1]["parts"][0]["functionCall"]["args"] == {}

    def test_arguments_that_are_not_an_object_are_refused(self) -> None:
        call = {**CALL, "function": {"name": "get_weather", "arguments": "[1]"}}
        err = refused({"messages": [USER, {"role": "assistant", "tool_calls": [call]}]})
        assert err.param == "messages[1].tool_calls[0].function.arguments"

    def test_thought_signature_rides_back_on_the_call(self) -> None:
        call = {**CALL, "extra_content": {"google": {"thought_signature": "c2ln"}}}
        out = translate(messages=[USER, {"role": "assistant", "tool_calls": [call]}])
        assert out["contents"][1]["parts"][0]["thoughtSignature"] == "c2ln"

    def test_tool_result_is_a_function_response_named_after_its_call(self) -> None:
        out = translate(
            messages=self.conversation(
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
            )
        )
        assert out["contents"][2] == {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}}
            ],
        }

    def test_json_object_tool_result_is_the_response_itself(self) -> None:
        out = translate(
            messages=self.conversation(
                {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'}
            )
        )
        assert out["contents"][2]["parts"][0]["functionResponse"]["response"] == {"temp": 21}

    def test_empty_json_object_tool_result_stays_an_object(self) -> None:
        out = translate(
            messages=self.conversation({"role": "tool", "tool_call_id": "call_1", "content": "{}"})
        )
        assert out["contents"][2]["parts"][0]["functionResponse"]["response"] == {}

    def test_echoed_openai_response_message_is_accepted(self) -> None:
        message = {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "annotations": [],
            "audio": None,
            "function_call": None,
            "tool_calls": [{**CALL, "index": 0}],
        }
        out = translate(messages=[USER, message])
        assert out["contents"][1]["parts"] == [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
        ]

    def test_tool_result_text_parts_are_joined(self) -> None:
        content = [{"type": "text", "text": "sun"}, {"type": "text", "text": "ny"}]
        out = translate(
            messages=self.conversation(
                {"role": "tool", "tool_call_id": "call_1", "content": content}
            )
        )
        response = out["contents"][2]["parts"][0]["functionResponse"]["response"]
        assert response == {"output": "sunny"}

    def test_consecutive_tool_results_merge_into_one_turn(self) -> None:
        second = {**CALL, "id": "call_2", "function": {"name": "get_time", "arguments": "{}"}}
        messages = [
            USER,
            {"role": "assistant", "tool_calls": [CALL, second]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": "noon"},
            USER,
        ]
        contents = translate(messages=messages)["contents"]
        assert len(contents) == 4
        names = [p["functionResponse"]["name"] for p in contents[2]["parts"]]
        assert names == ["get_weather", "get_time"]
        assert contents[3] == {"role": "user", "parts": [{"text": "Hi"}]}

    def test_tool_result_for_an_unknown_call_is_refused(self) -> None:
        message = {"role": "tool", "tool_call_id": "call_x", "content": "?"}
        err = refused({"messages": self.conversation(message)})
        assert err.param == "messages[2].tool_call_id"

    def test_non_function_tool_call_is_refused(self) -> None:
        call = {"id": "c", "type": "custom", "custom": {"name": "x", "input": "y"}}
        err = refused({"messages": [USER, {"role": "assistant", "tool_calls": [call]}]})
        assert err.param == "messages[1].tool_calls[0].type"


class TestTools:
    def test_function_tools_become_declarations_with_json_schema(self) -> None:
        out = translate(tools=[WEATHER_TOOL])
        assert out["tools"] == [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Weather for a city",
                        "parametersJsonSchema": WEATHER_TOOL["function"]["parameters"],
                    }
                ]
            }
        ]

    def test_strict_flag_is_accepted(self) -> None:
        tool = {"type": "function", "function": {**WEATHER_TOOL["function"], "strict": True}}
        assert "strict" not in translate(tools=[tool])["tools"][0]["functionDeclarations"][0]

    def test_tool_without_parameters_has_no_schema(self) -> None:
        tool = {"type": "function", "function": {"name": "now"}}
        assert translate(tools=[tool])["tools"][0]["functionDeclarations"] == [{"name": "now"}]

    def test_custom_tools_are_refused(self) -> None:
        err = refused({"tools": [{"type": "custom", "custom": {"name": "x"}}]})
        assert err.param == "tools[0].type"

    @pytest.mark.parametrize(
        ("choice", "mode"), [("none", "NONE"), ("auto", "AUTO"), ("required", "ANY")]
    )
    def test_tool_choice_modes(self, choice: str, mode: str) -> None:
        out = translate(tools=[WEATHER_TOOL], tool_choice=choice)
        assert out["toolConfig"] == {"functionCallingConfig": {"mode": mode}}

    def test_named_tool_choice_forces_that_function(self) -> None:
        choice = {"type": "function", "function": {"name": "get_weather"}}
        out = translate(tools=[WEATHER_TOOL], tool_choice=choice)
        assert out["toolConfig"] == {
            "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
        }

    def test_named_tool_choice_must_name_a_tool(self) -> None:
        choice = {"type": "function", "function": {"name": "nope"}}
        err = refused({"tools": [WEATHER_TOOL], "tool_choice": choice})
        assert err.param == "tool_choice.function.name"

    @pytest.mark.parametrize(("mode", "gemini"), [("required", "ANY"), ("auto", "VALIDATED")])
    def test_allowed_tools_limit_the_names(self, mode: str, gemini: str) -> None:
        choice = {
            "type": "allowed_tools",
            "allowed_tools": {
                "mode": mode,
                "tools": [{"type": "function", "function": {"name": "get_weather"}}],
            },
        }
        out = translate(tools=[WEATHER_TOOL], tool_choice=choice)
        assert out["toolConfig"]["functionCallingConfig"] == {
            "mode": gemini,
            "allowedFunctionNames": ["get_weather"],
        }

    def test_custom_tool_choice_is_refused(self) -> None:
        choice = {"type": "custom", "custom": {"name": "x"}}
        assert refused({"tools": [WEATHER_TOOL], "tool_choice": choice}).param == "tool_choice.type"

    def test_parallel_tool_calls_true_is_accepted(self) -> None:
        assert "tools" in translate(tools=[WEATHER_TOOL], parallel_tool_calls=True)

    def test_parallel_tool_calls_false_is_refused(self) -> None:
        assert refused({"parallel_tool_calls": False}).param == "parallel_tool_calls"


class TestGenerationConfig:
    @pytest.mark.parametrize(
        ("field", "value", "gemini", "expected"),
        [
            ("temperature", 0.2, "temperature", 0.2),
            ("top_p", 0.9, "topP", 0.9),
            ("max_tokens", 64, "maxOutputTokens", 64),
            ("max_completion_tokens", 32, "maxOutputTokens", 32),
            ("n", 2, "candidateCount", 2),
            ("seed", 7, "seed", 7),
            ("presence_penalty", 0.5, "presencePenalty", 0.5),
            ("frequency_penalty", -0.5, "frequencyPenalty", -0.5),
            ("stop", "END", "stopSequences", ["END"]),
            ("stop", ["a", "b"], "stopSequences", ["a", "b"]),
        ],
    )
    def test_sampling_field_maps(self, field: str, value: Any, gemini: str, expected: Any) -> None:
        assert config(**{field: value}) == {gemini: expected}

    def test_max_completion_tokens_wins_over_max_tokens(self) -> None:
        assert config(max_tokens=10, max_completion_tokens=20) == {"maxOutputTokens": 20}

    def test_empty_stop_list_sets_nothing(self) -> None:
        assert config(stop=[]) == {}

    def test_null_fields_count_as_absent(self) -> None:
        assert translate(temperature=None, logit_bias=None, tools=None) == translate()

    def test_wrong_type_names_the_field(self) -> None:
        err = refused({"temperature": "hot"})
        assert (err.param, err.code) == ("temperature", "invalid_value")

    def test_stop_with_non_strings_is_refused(self) -> None:
        assert refused({"stop": [1]}).param == "stop"

    def test_json_object_sets_the_json_mime_type(self) -> None:
        fmt = {"type": "json_object"}
        assert config(response_format=fmt) == {"responseMimeType": "application/json"}

    def test_text_response_format_sets_nothing(self) -> None:
        assert config(response_format={"type": "text"}) == {}

    def test_json_schema_reaches_gemini_as_response_json_schema(self) -> None:
        schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
        fmt = {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": schema, "strict": True},
        }
        assert config(response_format=fmt) == {
            "responseMimeType": "application/json",
            "responseJsonSchema": schema,
        }

    def test_json_schema_description_goes_into_the_schema(self) -> None:
        fmt = {
            "type": "json_schema",
            "json_schema": {"name": "x", "description": "A pair", "schema": {"type": "object"}},
        }
        schema = config(response_format=fmt)["responseJsonSchema"]
        assert schema == {"type": "object", "description": "A pair"}

    def test_conflicting_schema_description_is_refused(self) -> None:
        fmt = {
            "type": "json_schema",
            "json_schema": {"name": "x", "description": "A", "schema": {"description": "B"}},
        }
        assert refused({"response_format": fmt}).param == "response_format.json_schema.description"

    def test_unknown_response_format_is_refused(self) -> None:
        assert refused({"response_format": {"type": "grammar"}}).param == "response_format.type"

    @pytest.mark.parametrize(
        ("effort", "budget"),
        [("none", 0), ("minimal", 512), ("low", 1024), ("medium", 8192), ("high", 24576)],
    )
    def test_reasoning_effort_becomes_a_thinking_budget(self, effort: str, budget: int) -> None:
        assert config(reasoning_effort=effort) == {"thinkingConfig": {"thinkingBudget": budget}}

    def test_reasoning_effort_without_a_budget_is_refused(self) -> None:
        assert refused({"reasoning_effort": "xhigh"}).param == "reasoning_effort"


class TestBookkeepingAndRefusals:
    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("stream", True),
            ("stream_options", {"include_usage": True}),
            ("user", "u-1"),
            ("safety_identifier", "s"),
            ("metadata", {"k": "v"}),
            ("store", False),
            ("prompt_cache_key", "k"),
            ("prompt_cache_retention", "24h"),
            ("prompt_cache_options", {"mode": "implicit"}),
            ("service_tier", "auto"),
            ("service_tier", "default"),
            ("logprobs", False),
            ("modalities", ["text"]),
        ],
    )
    def test_harmless_field_is_accepted_and_not_forwarded(self, field: str, value: Any) -> None:
        assert translate(**{field: value}) == translate()

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("logit_bias", {"50256": -100}),
            ("logprobs", True),
            ("top_logprobs", 2),
            ("audio", {"voice": "alloy", "format": "wav"}),
            ("modalities", ["text", "audio"]),
            ("prediction", {"type": "content", "content": "x"}),
            ("functions", [{"name": "f"}]),
            ("function_call", "auto"),
            ("web_search_options", {}),
            ("verbosity", "low"),
            ("moderation", {"model": "omni-moderation-latest"}),
            ("store", True),
            ("service_tier", "flex"),
            ("some_future_field", 1),
        ],
    )
    def test_field_gemini_cannot_carry_is_refused_by_name(self, field: str, value: Any) -> None:
        err = refused({field: value})
        assert err.param == field
        assert err.code == "untranslatable_field"
