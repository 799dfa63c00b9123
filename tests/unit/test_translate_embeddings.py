"""Embeddings both ways: requests, vectors, base64 encoding and usage."""

from __future__ import annotations

import base64
import struct
from typing import Any

import pytest
from openai.types import CreateEmbeddingResponse

from anygate.core.translate import (
    UntranslatableFieldError,
    embeddings_request_to_gemini,
    gemini_embed_request_to_openai,
    gemini_embeddings_to_openai,
    openai_embeddings_to_gemini,
)

TEXT = {"parts": [{"text": "hello"}]}


def float32(values: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


class TestOpenAIRequestToGemini:
    def test_one_string_uses_embed_content(self) -> None:
        method, body = embeddings_request_to_gemini({"input": "hello", "model": "e"}, "emb-1")
        assert (method, body) == ("embedContent", {"content": TEXT})

    def test_a_list_uses_batch_embed_contents_naming_the_model(self) -> None:
        method, body = embeddings_request_to_gemini({"input": ["a", "b"]}, "emb-1")
        assert method == "batchEmbedContents"
        assert body == {
            "requests": [
                {"model": "models/emb-1", "content": {"parts": [{"text": "a"}]}},
                {"model": "models/emb-1", "content": {"parts": [{"text": "b"}]}},
            ]
        }

    def test_a_one_item_list_is_still_a_batch(self) -> None:
        assert embeddings_request_to_gemini({"input": ["a"]}, "emb-1")[0] == "batchEmbedContents"

    def test_a_model_path_is_kept(self) -> None:
        _, body = embeddings_request_to_gemini({"input": ["a"]}, "models/emb-1")
        assert body["requests"][0]["model"] == "models/emb-1"

    def test_dimensions_become_output_dimensionality(self) -> None:
        _, body = embeddings_request_to_gemini({"input": "a", "dimensions": 64}, "emb-1")
        assert body["outputDimensionality"] == 64

    def test_dimensions_apply_to_every_batch_request(self) -> None:
        _, body = embeddings_request_to_gemini({"input": ["a", "b"], "dimensions": 8}, "e")
        assert [r["outputDimensionality"] for r in body["requests"]] == [8, 8]

    @pytest.mark.parametrize("fields", [{"encoding_format": "base64"}, {"user": "u"}])
    def test_bookkeeping_fields_are_accepted(self, fields: dict[str, Any]) -> None:
        assert embeddings_request_to_gemini({"input": "a", **fields}, "e")[0] == "embedContent"

    @pytest.mark.parametrize("tokens", [[1, 2, 3], [[1, 2], [3]]])
    def test_token_arrays_are_refused(self, tokens: list[Any]) -> None:
        with pytest.raises(UntranslatableFieldError) as caught:
            embeddings_request_to_gemini({"input": tokens}, "e")
        assert caught.value.param == "input"

    def test_empty_list_is_refused(self) -> None:
        with pytest.raises(UntranslatableFieldError) as caught:
            embeddings_request_to_gemini({"input": []}, "e")
        assert caught.value.param == "input"

    def test_unknown_encoding_is_refused(self) -> None:
        with pytest.raises(UntranslatableFieldError) as caught:
            embeddings_request_to_gemini({"input": "a", "encoding_format": "int8"}, "e")
        assert caught.value.param == "encoding_format"

    def test_unknown_field_is_refused(self) -> None:
        with pytest.raises(UntranslatableFieldError) as caught:
            embeddings_request_to_gemini({"input": "a", "truncate": "END"}, "e")
        assert caught.value.param == "truncate"


class TestGeminiEmbeddingsToOpenAI:
    def test_single_vector_is_one_float_embedding(self) -> None:
        out = gemini_embeddings_to_openai(
            {"embedding": {"values": [0.5, -1.0]}}, model="emb-1", encoding_format=None
        )
        CreateEmbeddingResponse.model_validate(out)
        assert out == {
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -1.0]}],
            "model": "emb-1",
            "usage": {"prompt_tokens": 0, "total_tokens": 0},
        }

    def test_batch_vectors_keep_their_order(self) -> None:
        resp = {"embeddings": [{"values": [1.0]}, {"values": [2.0]}]}
        out = gemini_embeddings_to_openai(resp, model="e", encoding_format="float")
        assert [(d["index"], d["embedding"]) for d in out["data"]] == [(0, [1.0]), (1, [2.0])]

    def test_base64_is_little_endian_float32(self) -> None:
        values = [0.25, -1.5, 3.0]
        out = gemini_embeddings_to_openai(
            {"embedding": {"values": values}}, model="e", encoding_format="base64"
        )
        assert out["data"][0]["embedding"] == float32(values)

    def test_providers_token_counts_are_used_when_present(self) -> None:
        resp = {
            "embeddings": [{"values": [1.0]}],
            "usageMetadata": {"promptTokenCount": 4, "totalTokenCount": 4},
        }
        out = gemini_embeddings_to_openai(resp, model="e", encoding_format=None)
        assert out["usage"] == {"prompt_tokens": 4, "total_tokens": 4}


class TestGeminiRequestToOpenAI:
    def test_embed_content_becomes_a_string_input(self) -> None:
        out = gemini_embed_request_to_openai({"content": TEXT}, model="alias", batch=False)
        assert out == {"model": "alias", "input": "hello", "encoding_format": "float"}

    def test_batch_becomes_a_list_input(self) -> None:
        body = {
            "requests": [
                {"content": {"parts": [{"text": "a"}], "role": "user"}, "model": "models/alias"},
                {"content": {"parts": [{"text": "b"}]}, "model": "models/alias"},
            ]
        }
        out = gemini_embed_request_to_openai(body, model="alias", batch=True)
        assert out["input"] == ["a", "b"]

    def test_output_dimensionality_becomes_dimensions(self) -> None:
        body = {"content": TEXT, "output_dimensionality": 16}
        assert gemini_embed_request_to_openai(body, model="a", batch=False)["dimensions"] == 16

    def test_several_text_parts_are_one_input(self) -> None:
        body = {"content": {"parts": [{"text": "a"}, {"text": "b"}]}}
        assert gemini_embed_request_to_openai(body, model="a", batch=False)["input"] == "a b"

    def test_mixed_dimensionality_in_a_batch_is_refused(self) -> None:
        body = {
            "requests": [
                {"content": TEXT, "outputDimensionality": 8},
                {"content": TEXT, "outputDimensionality": 16},
            ]
        }
        with pytest.raises(UntranslatableFieldError) as caught:
            gemini_embed_request_to_openai(body, model="a", batch=True)
        assert caught.value.param == "requests[1].outputDimensionality"

    @pytest.mark.parametrize(("field", "value"), [("taskType", "RETRIEVAL_QUERY"), ("title", "t")])
    def test_fields_openai_cannot_carry_are_refused(self, field: str, value: str) -> None:
        with pytest.raises(UntranslatableFieldError) as caught:
            gemini_embed_request_to_openai({"content": TEXT, field: value}, model="a", batch=False)
        assert caught.value.param == field

    def test_another_model_in_a_batch_request_is_refused(self) -> None:
        body = {"requests": [{"content": TEXT, "model": "models/other"}]}
        with pytest.raises(UntranslatableFieldError) as caught:
            gemini_embed_request_to_openai(body, model="alias", batch=True)
        assert caught.value.param == "requests[0].model"

    def test_non_text_part_is_refused(self) -> None:
        body = {"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": "AA=="}}]}}
        with pytest.raises(UntranslatableFieldError) as caught:
            gemini_embed_request_to_openai(body, model="a", batch=False)
        assert caught.value.param == "content.parts[0].inlineData"

    def test_empty_batch_is_refused(self) -> None:
        with pytest.raises(UntranslatableFieldError) as caught:
            gemini_embed_request_to_openai({"requests": []}, model="a", batch=True)
        assert caught.value.param == "requests"


class TestOpenAIEmbeddingsToGemini:
    def resp(self, *embeddings: Any) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": e}
                for i, e in reversed(list(enumerate(embeddings)))
            ],
            "model": "m",
            "usage": {"prompt_tokens": 3, "total_tokens": 3},
        }

    def test_single_becomes_embedding_values(self) -> None:
        out = openai_embeddings_to_gemini(self.resp([0.5]), batch=False)
        assert out["embedding"] == {"values": [0.5]}

    def test_batch_becomes_embeddings_in_index_order(self) -> None:
        out = openai_embeddings_to_gemini(self.resp([1.0], [2.0]), batch=True)
        assert out["embeddings"] == [{"values": [1.0]}, {"values": [2.0]}]

    def test_base64_vectors_are_decoded(self) -> None:
        out = openai_embeddings_to_gemini(self.resp(float32([0.25, -2.0])), batch=False)
        assert out["embedding"] == {"values": [0.25, -2.0]}

    def test_usage_becomes_usage_metadata(self) -> None:
        out = openai_embeddings_to_gemini(self.resp([1.0]), batch=False)
        assert out["usageMetadata"] == {"promptTokenCount": 3, "totalTokenCount": 3}
