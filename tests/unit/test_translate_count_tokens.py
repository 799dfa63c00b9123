"""Gemini ``:countTokens`` requests and answers (docs/api.md#counttokens,
docs/translation.md#token-counts-counttokens): checked, never translated."""

from __future__ import annotations

from typing import Any

import pytest

from anygate.core.translate import (
    UntranslatableFieldError,
    count_is_valid,
    count_tokens_job_body,
    count_tokens_request,
)

CONTENTS = [{"role": "user", "parts": [{"text": "hello"}]}]


class TestJobBody:
    def test_contents_travel_as_sent_with_the_alias(self) -> None:
        assert count_tokens_job_body({"contents": CONTENTS}, "fast") == {
            "model": "fast",
            "contents": CONTENTS,
        }

    def test_a_generate_content_request_travels_whole(self) -> None:
        inner = {
            "model": "models/fast",
            "contents": CONTENTS,
            "systemInstruction": {"parts": [{"text": "be brief"}]},
            "tools": [{"functionDeclarations": [{"name": "f"}]}],
            "generationConfig": {"temperature": 0.1},
        }
        body = count_tokens_job_body({"generateContentRequest": inner}, "fast")
        assert body == {"model": "fast", "generateContentRequest": inner}

    def test_snake_case_names_are_read_and_stored_canonically(self) -> None:
        inner = {"contents": CONTENTS, "system_instruction": {"parts": [{"text": "x"}]}}
        body = count_tokens_job_body({"generate_content_request": inner}, "fast")
        assert body == {"model": "fast", "generateContentRequest": inner}

    def test_the_model_inside_may_omit_its_prefix(self) -> None:
        inner = {"model": "fast", "contents": CONTENTS}
        assert count_tokens_job_body({"generateContentRequest": inner}, "fast")

    def test_a_model_repeating_the_urls_is_taken_and_not_forwarded(self) -> None:
        for model in ("models/fast", "fast"):
            body = count_tokens_job_body({"model": model, "contents": CONTENTS}, "fast")
            assert body == {"model": "fast", "contents": CONTENTS}

    def test_null_fields_count_as_absent(self) -> None:
        body = count_tokens_job_body({"contents": CONTENTS, "generateContentRequest": None}, "a")
        assert body == {"model": "a", "contents": CONTENTS}

    @pytest.mark.parametrize(
        ("request_body", "param", "reason"),
        [
            ({}, "contents", "is required (or generateContentRequest)"),
            ({"contents": None}, "contents", "is required"),
            ({"contents": {"parts": []}}, "contents", "must be an array"),
            ({"contents": [1]}, "contents[0]", "must be a JSON object"),
            ({"contents": [{"role": 1}]}, "contents[0].role", "must be a string"),
            ({"contents": [{"parts": {}}]}, "contents[0].parts", "must be an array"),
            ({"contents": [{"parts": ["x"]}]}, "contents[0].parts[0]", "must be a JSON object"),
            ({"generateContentRequest": []}, "generateContentRequest", "must be a JSON object"),
            (
                {"generateContentRequest": {"tools": []}},
                "generateContentRequest.contents",
                "is required in a generateContentRequest",
            ),
            (
                {"generateContentRequest": {"model": "models/slow", "contents": []}},
                "generateContentRequest.model",
                "must be the model in the URL, models/fast",
            ),
            (
                {"generateContentRequest": {"model": 3, "contents": []}},
                "generateContentRequest.model",
                "must be a string",
            ),
            (
                {"contents": CONTENTS, "tools": []},
                "tools",
                "is not a field of CountTokensRequest; send it inside generateContentRequest",
            ),
            (
                {"contents": CONTENTS, "system_instruction": {}},
                "system_instruction",
                "send it inside generateContentRequest",
            ),
            ({"contents": CONTENTS, "model": "models/slow"}, "model", "must be the model in"),
            ({"contents": CONTENTS, "foo": 1}, "foo", "is not a field of CountTokensRequest"),
            ({"contents": CONTENTS, "cachedContent": "c/1"}, "cachedContent", "send it inside"),
        ],
    )
    def test_a_bad_request_names_the_field(
        self, request_body: dict[str, Any], param: str, reason: str
    ) -> None:
        with pytest.raises(UntranslatableFieldError) as info:
            count_tokens_job_body(request_body, "fast")
        assert info.value.param == param
        assert info.value.status == 400
        assert reason in info.value.message
        assert info.value.message.startswith(f"{param}: ")

    def test_a_body_that_is_not_an_object(self) -> None:
        with pytest.raises(UntranslatableFieldError, match="must be a JSON object"):
            count_tokens_job_body([], "fast")  # type: ignore[arg-type]


class TestUpstreamRequest:
    def test_contents_go_without_the_alias(self) -> None:
        job = {"model": "fast", "contents": CONTENTS}
        assert count_tokens_request(job, "gemini-2.5-pro") == {"contents": CONTENTS}

    def test_the_inner_request_names_the_upstream_model(self) -> None:
        inner = {"model": "models/fast", "contents": CONTENTS, "tools": []}
        job = {"model": "fast", "generateContentRequest": inner}
        request = count_tokens_request(job, "gemini-2.5-pro")
        assert request == {
            "generateContentRequest": {
                "contents": CONTENTS,
                "tools": [],
                "model": "models/gemini-2.5-pro",
            }
        }
        assert inner["model"] == "models/fast", "the job's body is not changed"

    def test_a_model_is_added_when_the_client_left_it_out(self) -> None:
        job = {"model": "fast", "generateContentRequest": {"contents": CONTENTS}}
        inner = count_tokens_request(job, "gemini-2.5-pro")["generateContentRequest"]
        assert inner["model"] == "models/gemini-2.5-pro"

    def test_a_tuned_model_keeps_its_own_collection(self) -> None:
        job = {"model": "fast", "generateContentRequest": {"contents": CONTENTS}}
        inner = count_tokens_request(job, "tunedModels/mine")["generateContentRequest"]
        assert inner["model"] == "tunedModels/mine"


@pytest.mark.parametrize(
    ("answer", "valid"),
    [
        ({"totalTokens": 12}, True),
        ({"totalTokens": 0}, True),
        ({}, True),  # proto3 JSON leaves a zero count out
        ({"totalTokens": 3, "cachedContentTokenCount": 2, "promptTokensDetails": []}, True),
        ({"totalTokens": "12"}, False),
        ({"totalTokens": -1}, False),
        ({"totalTokens": 1.5}, False),
        ({"totalTokens": True}, False),
    ],
)
def test_a_count_to_pass_on(answer: dict[str, Any], valid: bool) -> None:
    assert count_is_valid(answer) is valid
