"""Shared pieces: Gemini Schema → JSON Schema, Google error bodies, the package's surface,
and the Gemini adapter's pure helpers."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

import anygate.core.translate as translate
from anygate.broker.errors import (
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamTransientError,
)
from anygate.core.translate import UntranslatableFieldError
from anygate.core.translate.schema import convert
from anygate.workers.adapters.gemini import _stream_error, _with_tool_call_extras
from anygate.workers.adapters.http import error_for_status, parse_duration
from anygate.workers.adapters.targets import gemini_api_root as api_root
from anygate.workers.adapters.targets import gemini_model_path as model_path
from anygate.workers.assemble import assemble_chat_completion


class TestSchema:
    def test_upper_case_types_become_json_types(self) -> None:
        assert convert({"type": "STRING"}, "s") == {"type": "string"}

    def test_nullable_becomes_a_null_type(self) -> None:
        assert convert({"type": "INTEGER", "nullable": True}, "s") == {"type": ["integer", "null"]}

    def test_nested_properties_and_items_are_converted(self) -> None:
        schema = {
            "type": "OBJECT",
            "properties": {"xs": {"type": "ARRAY", "items": {"type": "NUMBER"}}},
        }
        assert convert(schema, "s") == {
            "type": "object",
            "properties": {"xs": {"type": "array", "items": {"type": "number"}}},
        }

    def test_property_names_are_not_renamed(self) -> None:
        schema = {"type": "OBJECT", "properties": {"first_name": {"type": "STRING"}}}
        assert list(convert(schema, "s")["properties"]) == ["first_name"]

    def test_property_ordering_orders_the_properties(self) -> None:
        schema = {
            "type": "OBJECT",
            "properties": {"a": {"type": "STRING"}, "b": {"type": "STRING"}},
            "propertyOrdering": ["b", "a"],
        }
        out = convert(schema, "s")
        assert list(out["properties"]) == ["b", "a"]
        assert "propertyOrdering" not in out

    def test_constraints_are_copied(self) -> None:
        schema = {"type": "STRING", "enum": ["x"], "description": "d", "max_length": 3}
        assert convert(schema, "s") == {
            "type": "string",
            "enum": ["x"],
            "description": "d",
            "maxLength": 3,
        }

    def test_enum_format_marker_is_dropped(self) -> None:
        assert convert({"type": "STRING", "format": "enum", "enum": ["a"]}, "s") == {
            "type": "string",
            "enum": ["a"],
        }

    def test_any_of_is_converted(self) -> None:
        schema = {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}], "nullable": True}
        assert convert(schema, "s") == {
            "anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]
        }

    def test_defs_and_refs_become_json_schema_ones(self) -> None:
        schema = {"defs": {"P": {"type": "STRING"}}, "ref": "#/defs/P"}
        assert convert(schema, "s") == {"$defs": {"P": {"type": "string"}}, "$ref": "#/$defs/P"}

    def test_example_becomes_examples(self) -> None:
        assert convert({"type": "STRING", "example": "x"}, "s") == {
            "type": "string",
            "examples": ["x"],
        }

    def test_unknown_keyword_is_refused_with_its_path(self) -> None:
        with pytest.raises(UntranslatableFieldError) as caught:
            convert({"type": "OBJECT", "properties": {"a": {"type": "STRING", "x": 1}}}, "s")
        assert caught.value.param == "s.properties.a.x"

    def test_unknown_type_is_refused(self) -> None:
        with pytest.raises(UntranslatableFieldError) as caught:
            convert({"type": "DATE"}, "s")
        assert caught.value.param == "s.type"


STATUS_NAMES = {400: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL"}


def google_error(status: int, message: str, details: list[Any] | None = None) -> bytes:
    error: dict[str, Any] = {"code": status, "message": message, "status": STATUS_NAMES[status]}
    if details is not None:
        error["details"] = details
    return orjson.dumps({"error": error})


RETRY_INFO = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}


class TestGoogleErrors:
    def test_retry_delay_counts_as_retry_after(self) -> None:
        body = google_error(429, "quota", [RETRY_INFO])
        err = error_for_status(429, body, httpx.Headers())
        assert isinstance(err, UpstreamRateLimitedError)
        assert err.retry_after == 2.0

    def test_the_longer_of_header_and_retry_delay_wins(self) -> None:
        body = google_error(429, "quota", [RETRY_INFO])
        err = error_for_status(429, body, httpx.Headers({"retry-after": "5"}))
        assert err.retry_after == 5.0

    def test_429_without_any_delay_has_none(self) -> None:
        err = error_for_status(429, google_error(429, "quota", []), httpx.Headers())
        assert err.retry_after is None

    def test_message_and_status_name_are_reported(self) -> None:
        err = error_for_status(400, google_error(400, "Bad schema"), httpx.Headers())
        assert isinstance(err, UpstreamRejectedError)
        assert (err.message, err.code) == ("Bad schema", "INVALID_ARGUMENT")

    def test_array_wrapped_error_is_understood(self) -> None:
        body = b"[" + google_error(500, "boom") + b"]"
        err = error_for_status(500, body, httpx.Headers())
        assert isinstance(err, UpstreamTransientError)
        assert err.message == "boom"

    def test_other_details_are_ignored(self) -> None:
        info = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
        err = error_for_status(400, google_error(400, "API key not valid", [info]), httpx.Headers())
        assert err.message == "API key not valid"

    @pytest.mark.parametrize(
        ("value", "seconds"),
        [
            ("2s", 2.0),
            ("0.5s", 0.5),
            ("13.000123s", 13.000123),
            ({"seconds": 3, "nanos": 5e8}, 3.5),
            ("2", None),
            ("soon", None),
            (None, None),
        ],
    )
    def test_duration_parsing(self, value: Any, seconds: float | None) -> None:
        assert parse_duration(value) == seconds


def test_exports_are_exactly_the_public_api_sorted() -> None:
    assert translate.__all__ == [
        "CHAT_FIELD_NAMES",
        "ChatStreamToGemini",
        "GeminiStreamToChat",
        "UntranslatableFieldError",
        "chat_request_to_gemini",
        "chat_response_to_gemini",
        "count_is_valid",
        "count_tokens_job_body",
        "count_tokens_request",
        "embed_field_names",
        "embeddings_request_to_gemini",
        "gemini_embed_request_to_openai",
        "gemini_embeddings_to_openai",
        "gemini_request_to_chat",
        "gemini_response_to_chat",
        "openai_embeddings_to_gemini",
    ]
    assert all(hasattr(translate, name) for name in translate.__all__)


def test_untranslatable_field_error_is_a_400_with_its_param() -> None:
    err = UntranslatableFieldError("generationConfig.topK", "OpenAI has no top-k sampling")
    assert err.status == 400
    assert err.to_openai()["error"]["param"] == "generationConfig.topK"
    assert err.message == "generationConfig.topK: OpenAI has no top-k sampling"


class TestAdapterHelpers:
    @pytest.mark.parametrize(
        ("base", "root"),
        [
            (
                "https://generativelanguage.googleapis.com",
                "https://generativelanguage.googleapis.com/v1beta",
            ),
            ("http://mock:1/", "http://mock:1/v1beta"),
            ("https://proxy/v1", "https://proxy/v1"),
            ("https://proxy/gemini/v1beta/", "https://proxy/gemini/v1beta"),
        ],
    )
    def test_api_root_adds_the_version_only_when_missing(self, base: str, root: str) -> None:
        assert api_root(base) == root

    @pytest.mark.parametrize(
        ("model", "path"),
        [
            ("gemini-2.5-flash", "models/gemini-2.5-flash"),
            ("models/x", "models/x"),
            ("tunedModels/my-model", "tunedModels/my-model"),
            ("a b", "models/a%20b"),
        ],
    )
    def test_model_path(self, model: str, path: str) -> None:
        assert model_path(model) == path

    def test_error_event_in_a_stream_is_transient(self) -> None:
        err = _stream_error(
            {"error": {"code": 400, "message": "late", "status": "INVALID_ARGUMENT"}}
        )
        assert isinstance(err, UpstreamTransientError)
        assert err.message == "late"

    def test_rate_limit_event_in_a_stream_keeps_its_delay(self) -> None:
        event = {"error": {"code": 429, "message": "slow", "details": [RETRY_INFO]}}
        err = _stream_error(event)
        assert isinstance(err, UpstreamRateLimitedError)
        assert err.retry_after == 2.0

    def test_error_event_without_a_code_is_transient(self) -> None:
        assert isinstance(_stream_error({"error": "boom"}), UpstreamTransientError)

    def test_thought_signatures_survive_the_fold_of_a_stream(self) -> None:
        signature = {"google": {"thought_signature": "c2ln"}}
        delta = {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "c",
                    "type": "function",
                    "function": {"name": "f", "arguments": "{}"},
                    "extra_content": signature,
                }
            ]
        }
        chunks = [{"id": "x", "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}]
        result = assemble_chat_completion(chunks)
        _with_tool_call_extras(result, chunks)
        assert result["choices"][0]["message"]["tool_calls"][0]["extra_content"] == signature
