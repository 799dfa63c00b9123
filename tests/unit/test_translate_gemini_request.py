"""Gemini GenerateContentRequest (as google-genai sends it) → OpenAI chat request."""

from __future__ import annotations

from typing import Any

import pytest

from anygate.core.translate import UntranslatableFieldError, gemini_request_to_chat

HI = {"role": "user", "parts": [{"text": "Hi"}]}

# Captured from google-genai 3.4 talking to the mock: note the snake_case keys nested inside
# camelCase ones (``inlineData.mime_type``, ``parameters_json_schema``), which proto3 JSON allows.
SDK_TOOLS_REQUEST: dict[str, Any] = {
    "contents": [
        {
            "parts": [
                {"text": "hi"},
                {"inlineData": {"data": "iVBORw==", "mime_type": "image/png"}},
            ],
            "role": "user",
        }
    ],
    "systemInstruction": {"parts": [{"text": "be nice"}], "role": "user"},
    "tools": [
        {
            "functionDeclarations": [
                {
                    "description": "Get weather.",
                    "name": "get_weather",
                    "parameters_json_schema": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    },
                    "response_json_schema": {"type": "string"},
                }
            ]
        }
    ],
    "toolConfig": {
        "functionCallingConfig": {"allowedFunctionNames": ["get_weather"], "mode": "ANY"}
    },
    "generationConfig": {"temperature": 0.5, "thinkingConfig": {"thinking_budget": 0}},
}
SDK_SCHEMA_REQUEST: dict[str, Any] = {
    "contents": [{"parts": [{"text": "hi"}], "role": "user"}],
    "generationConfig": {
        "maxOutputTokens": 50,
        "stopSequences": ["x"],
        "responseMimeType": "application/json",
        "responseSchema": {
            "properties": {
                "name": {"title": "Name", "type": "STRING"},
                "tags": {"items": {"type": "STRING"}, "title": "Tags", "type": "ARRAY"},
                "n": {"nullable": True, "title": "N", "type": "INTEGER"},
            },
            "property_ordering": ["tags", "name", "n"],
            "required": ["name", "tags"],
            "title": "Out",
            "type": "OBJECT",
        },
    },
}


def translate(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"contents": [HI]}
    body.update(fields)
    return gemini_request_to_chat(body, model="alias")


def refused(**fields: Any) -> UntranslatableFieldError:
    with pytest.raises(UntranslatableFieldError) as caught:
        translate(**fields)
    return caught.value


def call_part(name: str = "get_weather", **extra: Any) -> dict[str, Any]:
    return {"functionCall": {"name": name, "args": {"city": "Paris"}, **extra}}


def response_part(name: str = "get_weather", response: Any = None, **extra: Any) -> dict[str, Any]:
    return {
        "functionResponse": {"name": name, "response": response or {"output": "sunny"}, **extra}
    }


class TestContents:
    def test_user_text_becomes_a_user_message_for_the_named_model(self) -> None:
        assert translate() == {"model": "alias", "messages": [{"role": "user", "content": "Hi"}]}

    def test_no_stream_key_is_added(self) -> None:
        assert "stream" not in translate()

    def test_missing_role_means_user(self) -> None:
        out = translate(contents=[{"parts": [{"text": "Hi"}]}])
        assert out["messages"] == [{"role": "user", "content": "Hi"}]

    def test_model_role_becomes_assistant(self) -> None:
        out = translate(contents=[HI, {"role": "model", "parts": [{"text": "Yo"}]}, HI])
        assert out["messages"][1] == {"role": "assistant", "content": "Yo"}

    def test_model_text_parts_are_concatenated(self) -> None:
        parts = [{"text": "Hel"}, {"text": "lo"}]
        out = translate(contents=[HI, {"role": "model", "parts": parts}])
        assert out["messages"][1]["content"] == "Hello"

    def test_several_user_parts_become_a_content_array(self) -> None:
        out = translate(contents=[{"role": "user", "parts": [{"text": "a"}, {"text": "b"}]}])
        assert out["messages"][0]["content"] == [
            {"type": "text", "text": "a"},
            {"type": "text", "text": "b"},
        ]

    def test_system_instruction_becomes_a_leading_system_message(self) -> None:
        out = translate(systemInstruction={"parts": [{"text": "Be terse"}], "role": "user"})
        assert out["messages"][0] == {"role": "system", "content": "Be terse"}

    def test_system_instruction_with_several_parts_keeps_them(self) -> None:
        out = translate(systemInstruction={"parts": [{"text": "a"}, {"text": "b"}]})
        assert out["messages"][0]["content"] == [
            {"type": "text", "text": "a"},
            {"type": "text", "text": "b"},
        ]

    def test_system_instruction_image_is_refused(self) -> None:
        system = {"parts": [{"inlineData": {"mimeType": "image/png", "data": "AA=="}}]}
        assert refused(systemInstruction=system).param == "systemInstruction.parts[0].inlineData"

    def test_empty_contents_are_refused(self) -> None:
        assert refused(contents=[]).param == "contents"

    def test_unknown_role_is_refused(self) -> None:
        assert refused(contents=[{"role": "system", "parts": []}]).param == "contents[0].role"

    def test_thought_part_is_refused(self) -> None:
        parts = [{"text": "hmm", "thought": True}]
        err = refused(contents=[HI, {"role": "model", "parts": parts}])
        assert err.param == "contents[1].parts[0].thought"

    def test_thought_signature_on_text_is_accepted(self) -> None:
        parts = [{"text": "Yo", "thoughtSignature": "c2ln"}]
        out = translate(contents=[HI, {"role": "model", "parts": parts}])
        assert out["messages"][1] == {"role": "assistant", "content": "Yo"}

    @pytest.mark.parametrize(
        "part",
        [
            {"executableCode": {"language": "PYTHON", "code": "1"}},
            {"codeExecutionResult": {"outcome": "OUTCOME_OK"}},
            {"videoMetadata": {"fps": 1}},
        ],
    )
    def test_parts_openai_cannot_take_are_refused(self, part: dict[str, Any]) -> None:
        key = next(iter(part))
        assert refused(contents=[{"role": "user", "parts": [part]}]).param == (
            f"contents[0].parts[0].{key}"
        )


class TestMedia:
    def parts(self, *parts: dict[str, Any], **config: Any) -> Any:
        fields: dict[str, Any] = {"contents": [{"role": "user", "parts": list(parts)}]}
        if config:
            fields["generationConfig"] = config
        return translate(**fields)["messages"][0]["content"]

    def test_inline_image_becomes_a_data_url(self) -> None:
        content = self.parts({"inlineData": {"mimeType": "image/png", "data": "iVBORw=="}})
        assert content == [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw=="}}
        ]

    def test_snake_case_keys_from_the_sdk_are_understood(self) -> None:
        content = self.parts({"inline_data": {"mime_type": "image/jpeg", "data": "AA=="}})
        assert content[0]["image_url"]["url"] == "data:image/jpeg;base64,AA=="

    def test_http_file_data_becomes_an_image_url(self) -> None:
        content = self.parts({"fileData": {"mimeType": "image/png", "fileUri": "https://x/a.png"}})
        assert content == [{"type": "image_url", "image_url": {"url": "https://x/a.png"}}]

    def test_gemini_files_api_uri_is_refused(self) -> None:
        uri = "https://generativelanguage.googleapis.com/v1beta/files/abc"
        part = {"fileData": {"mimeType": "image/png", "fileUri": uri}}
        err = refused(contents=[{"role": "user", "parts": [part]}])
        assert err.param == "contents[0].parts[0].fileData.fileUri"

    def test_non_image_file_url_is_refused(self) -> None:
        part = {"fileData": {"mimeType": "video/mp4", "fileUri": "https://x/a.mp4"}}
        err = refused(contents=[{"role": "user", "parts": [part]}])
        assert err.param == "contents[0].parts[0].fileData.mimeType"

    @pytest.mark.parametrize(("mime", "fmt"), [("audio/wav", "wav"), ("audio/mpeg", "mp3")])
    def test_inline_audio_becomes_input_audio(self, mime: str, fmt: str) -> None:
        content = self.parts({"inlineData": {"mimeType": mime, "data": "AA=="}})
        assert content == [{"type": "input_audio", "input_audio": {"data": "AA==", "format": fmt}}]

    def test_inline_pdf_becomes_a_file_part(self) -> None:
        content = self.parts({"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}})
        assert content[0]["file"]["file_data"] == "data:application/pdf;base64,JVBE"

    def test_other_inline_media_is_refused(self) -> None:
        part = {"inlineData": {"mimeType": "video/mp4", "data": "AA=="}}
        err = refused(contents=[{"role": "user", "parts": [part]}])
        assert err.param == "contents[0].parts[0].inlineData.mimeType"

    @pytest.mark.parametrize(
        ("resolution", "detail"),
        [("MEDIA_RESOLUTION_LOW", "low"), ("MEDIA_RESOLUTION_HIGH", "high")],
    )
    def test_media_resolution_becomes_image_detail(self, resolution: str, detail: str) -> None:
        image = {"inlineData": {"mimeType": "image/png", "data": "AA=="}}
        content = self.parts(image, mediaResolution=resolution)
        assert content[0]["image_url"]["detail"] == detail

    def test_medium_resolution_with_images_is_refused(self) -> None:
        image = {"inlineData": {"mimeType": "image/png", "data": "AA=="}}
        err = refused(
            contents=[{"role": "user", "parts": [image]}],
            generationConfig={"mediaResolution": "MEDIA_RESOLUTION_MEDIUM"},
        )
        assert err.param == "generationConfig.mediaResolution"

    def test_medium_resolution_without_images_is_harmless(self) -> None:
        out = translate(generationConfig={"mediaResolution": "MEDIA_RESOLUTION_MEDIUM"})
        assert out["messages"] == [{"role": "user", "content": "Hi"}]


class TestFunctionCalling:
    def test_function_call_becomes_a_tool_call_with_json_arguments(self) -> None:
        out = translate(contents=[HI, {"role": "model", "parts": [call_part(id="abc")]}])
        assert out["messages"][1] == {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "abc",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        }

    def test_call_without_id_gets_a_stable_call_id(self) -> None:
        contents = [HI, {"role": "model", "parts": [call_part()]}]
        first = translate(contents=contents)["messages"][1]["tool_calls"][0]["id"]
        again = translate(contents=contents)["messages"][1]["tool_calls"][0]["id"]
        assert first == again
        assert first.startswith("call_")

    def test_two_identical_calls_get_different_ids(self) -> None:
        contents = [HI, {"role": "model", "parts": [call_part(), call_part()]}]
        calls = translate(contents=contents)["messages"][1]["tool_calls"]
        assert calls[0]["id"] != calls[1]["id"]

    def test_thought_signature_rides_on_the_tool_call(self) -> None:
        part = {**call_part(), "thoughtSignature": "c2ln"}
        out = translate(contents=[HI, {"role": "model", "parts": [part]}])
        call = out["messages"][1]["tool_calls"][0]
        assert call["extra_content"] == {"google": {"thought_signature": "c2ln"}}

    def test_function_response_answers_the_call_by_name(self) -> None:
        answer = {"role": "user", "parts": [response_part()]}
        out = translate(contents=[HI, {"role": "model", "parts": [call_part()]}, answer])
        call_id = out["messages"][1]["tool_calls"][0]["id"]
        assert out["messages"][2] == {"role": "tool", "tool_call_id": call_id, "content": "sunny"}

    def test_function_response_answers_the_call_by_id(self) -> None:
        calls = {"role": "model", "parts": [call_part(id="a"), call_part(id="b")]}
        answer = {"role": "user", "parts": [response_part(id="b")]}
        out = translate(contents=[HI, calls, answer])
        assert out["messages"][2]["tool_call_id"] == "b"

    def test_responses_pair_with_same_named_calls_in_order(self) -> None:
        calls = {"role": "model", "parts": [call_part(), call_part()]}
        answers = {"role": "user", "parts": [response_part(), response_part()]}
        out = translate(contents=[HI, calls, answers])
        ids = [call["id"] for call in out["messages"][1]["tool_calls"]]
        assert [m["tool_call_id"] for m in out["messages"][2:]] == ids

    def test_structured_response_is_sent_as_json(self) -> None:
        answer = {"role": "user", "parts": [response_part(response={"temp": 21})]}
        out = translate(contents=[HI, {"role": "model", "parts": [call_part()]}, answer])
        assert out["messages"][2]["content"] == '{"temp":21}'

    def test_responses_come_before_the_text_of_the_same_turn(self) -> None:
        answer = {"role": "user", "parts": [{"text": "thanks"}, response_part()]}
        out = translate(contents=[HI, {"role": "model", "parts": [call_part()]}, answer])
        assert [m["role"] for m in out["messages"]] == ["user", "assistant", "tool", "user"]

    def test_response_without_a_call_is_refused(self) -> None:
        err = refused(contents=[HI, {"role": "user", "parts": [response_part()]}])
        assert err.param == "contents[1].parts[0].functionResponse.name"

    def test_response_with_an_unknown_id_is_refused(self) -> None:
        answer = {"role": "user", "parts": [response_part(id="zzz")]}
        err = refused(contents=[HI, {"role": "model", "parts": [call_part(id="a")]}, answer])
        assert err.param == "contents[2].parts[0].functionResponse.id"


class TestTools:
    def test_sdk_request_translates_tools_choice_system_and_image(self) -> None:
        out = gemini_request_to_chat(SDK_TOOLS_REQUEST, model="alias")
        assert out["messages"][0] == {"role": "system", "content": "be nice"}
        assert out["messages"][1]["content"][1]["image_url"]["url"].startswith("data:image/png")
        assert out["tools"] == [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Get weather.",
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    },
                },
            }
        ]
        assert out["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
        assert out["temperature"] == 0.5
        assert out["reasoning_effort"] == "none"

    def test_gemini_schema_parameters_become_json_schema(self) -> None:
        declaration = {
            "name": "f",
            "parameters": {
                "type": "OBJECT",
                "properties": {"q": {"type": "STRING", "nullable": True}},
                "required": ["q"],
            },
        }
        out = translate(tools=[{"functionDeclarations": [declaration]}])
        assert out["tools"][0]["function"]["parameters"] == {
            "type": "object",
            "properties": {"q": {"type": ["string", "null"]}},
            "required": ["q"],
        }

    @pytest.mark.parametrize("tool", ["googleSearch", "codeExecution", "urlContext", "google_maps"])
    def test_built_in_tools_are_refused(self, tool: str) -> None:
        assert refused(tools=[{tool: {}}]).param == f"tools[0].{tool}"

    def test_behavior_on_a_declaration_is_refused(self) -> None:
        declaration = {"name": "f", "behavior": "NON_BLOCKING"}
        err = refused(tools=[{"functionDeclarations": [declaration]}])
        assert err.param == "tools[0].functionDeclarations[0].behavior"

    @pytest.mark.parametrize(
        ("config", "choice"),
        [
            ({"mode": "NONE"}, "none"),
            ({"mode": "AUTO"}, "auto"),
            ({"mode": "ANY"}, "required"),
            ({"mode": "VALIDATED"}, "auto"),
            (
                {"mode": "any", "allowedFunctionNames": ["f"]},
                {"type": "function", "function": {"name": "f"}},
            ),
            (
                {"mode": "ANY", "allowedFunctionNames": ["f", "g"]},
                {
                    "type": "allowed_tools",
                    "allowed_tools": {
                        "mode": "required",
                        "tools": [
                            {"type": "function", "function": {"name": "f"}},
                            {"type": "function", "function": {"name": "g"}},
                        ],
                    },
                },
            ),
            (
                {"mode": "VALIDATED", "allowedFunctionNames": ["f"]},
                {
                    "type": "allowed_tools",
                    "allowed_tools": {
                        "mode": "auto",
                        "tools": [{"type": "function", "function": {"name": "f"}}],
                    },
                },
            ),
        ],
    )
    def test_function_calling_modes_become_tool_choice(
        self, config: dict[str, Any], choice: Any
    ) -> None:
        out = translate(toolConfig={"functionCallingConfig": config})
        assert out["tool_choice"] == choice

    def test_retrieval_config_is_refused(self) -> None:
        err = refused(toolConfig={"retrievalConfig": {"languageCode": "en"}})
        assert err.param == "toolConfig.retrievalConfig"


class TestGenerationConfig:
    @pytest.mark.parametrize(
        ("field", "value", "openai", "expected"),
        [
            ("temperature", 0.3, "temperature", 0.3),
            ("topP", 0.8, "top_p", 0.8),
            ("candidateCount", 2, "n", 2),
            ("maxOutputTokens", 99, "max_completion_tokens", 99),
            ("max_output_tokens", 99, "max_completion_tokens", 99),
            ("stopSequences", ["x"], "stop", ["x"]),
            ("seed", 5, "seed", 5),
            ("presencePenalty", 0.1, "presence_penalty", 0.1),
            ("frequencyPenalty", 0.2, "frequency_penalty", 0.2),
        ],
    )
    def test_field_maps(self, field: str, value: Any, openai: str, expected: Any) -> None:
        assert translate(generationConfig={field: value})[openai] == expected

    def test_json_mime_type_without_schema_is_json_object(self) -> None:
        out = translate(generationConfig={"responseMimeType": "application/json"})
        assert out["response_format"] == {"type": "json_object"}

    def test_text_mime_type_sets_no_format(self) -> None:
        assert "response_format" not in translate(
            generationConfig={"responseMimeType": "text/plain"}
        )

    def test_response_json_schema_becomes_json_schema_format(self) -> None:
        schema = {"type": "object", "title": "Pair"}
        out = translate(
            generationConfig={"responseMimeType": "application/json", "responseJsonSchema": schema}
        )
        assert out["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "Pair", "schema": schema},
        }

    def test_sdk_response_schema_is_converted_and_ordered(self) -> None:
        out = gemini_request_to_chat(SDK_SCHEMA_REQUEST, model="alias")
        schema = out["response_format"]["json_schema"]["schema"]
        assert out["response_format"]["json_schema"]["name"] == "Out"
        assert list(schema["properties"]) == ["tags", "name", "n"]
        assert schema["properties"]["n"] == {"title": "N", "type": ["integer", "null"]}
        assert schema["properties"]["tags"] == {
            "title": "Tags",
            "type": "array",
            "items": {"type": "string"},
        }
        assert (out["max_completion_tokens"], out["stop"]) == (50, ["x"])

    def test_schema_without_json_mime_type_is_refused(self) -> None:
        err = refused(generationConfig={"responseJsonSchema": {"type": "object"}})
        assert err.param == "generationConfig.responseMimeType"

    def test_enum_mime_type_is_refused(self) -> None:
        err = refused(generationConfig={"responseMimeType": "text/x.enum"})
        assert err.param == "generationConfig.responseMimeType"

    @pytest.mark.parametrize(
        ("thinking", "effort"),
        [
            ({"thinkingBudget": 0}, "none"),
            ({"thinking_budget": 1024}, "low"),
            ({"thinkingBudget": 4000}, "medium"),
            ({"thinkingBudget": 30000}, "high"),
            ({"thinkingLevel": "HIGH"}, "high"),
            ({"thinkingLevel": "minimal"}, "minimal"),
        ],
    )
    def test_thinking_becomes_reasoning_effort(self, thinking: dict[str, Any], effort: str) -> None:
        assert (
            translate(generationConfig={"thinkingConfig": thinking})["reasoning_effort"] == effort
        )

    def test_dynamic_thinking_leaves_effort_unset(self) -> None:
        out = translate(generationConfig={"thinkingConfig": {"thinkingBudget": -1}})
        assert "reasoning_effort" not in out

    def test_include_thoughts_is_refused(self) -> None:
        err = refused(generationConfig={"thinkingConfig": {"includeThoughts": True}})
        assert err.param == "generationConfig.thinkingConfig.includeThoughts"

    def test_text_modality_is_accepted(self) -> None:
        assert translate(generationConfig={"responseModalities": ["TEXT"]})["messages"]

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("topK", 40),
            ("top_k", 40),
            ("responseLogprobs", True),
            ("logprobs", 3),
            ("responseModalities", ["TEXT", "IMAGE"]),
            ("speechConfig", {"voiceConfig": {}}),
            ("enableEnhancedCivicAnswers", True),
            ("imageConfig", {"aspectRatio": "1:1"}),
        ],
    )
    def test_generation_field_openai_cannot_carry_is_refused(self, field: str, value: Any) -> None:
        assert refused(generationConfig={field: value}).param == f"generationConfig.{field}"


class TestTopLevel:
    @pytest.mark.parametrize(
        ("field", "value"),
        [
            (
                "safetySettings",
                [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}],
            ),
            ("cachedContent", "cachedContents/abc"),
            ("serviceTier", "flex"),
            ("store", True),
            ("continuationToken", "x"),
        ],
    )
    def test_field_openai_cannot_carry_is_refused_by_name(self, field: str, value: Any) -> None:
        err = refused(**{field: value})
        assert err.param == field
        assert err.code == "untranslatable_field"

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("safetySettings", []),
            ("labels", {"team": "a"}),
            ("model", "models/x"),
            ("serviceTier", "standard"),
        ],
    )
    def test_harmless_field_is_accepted(self, field: str, value: Any) -> None:
        assert translate(**{field: value}) == translate()
