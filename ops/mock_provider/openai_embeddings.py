"""OpenAI `/v1/embeddings`: input validation and `CreateEmbeddingResponse` bodies.

Vectors come from `common.embedding_vector`, so the same text always embeds the same way and
the base64 form decodes to exactly the float form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from anygate.ops.mock_provider.common import (
    BadRequestError,
    count_words,
    embedding_vector,
    float32_base64,
)
from anygate.ops.mock_provider.openai_wire import positive_int
from anygate.ops.mock_provider.settings import MockSettings


@dataclass(frozen=True, slots=True)
class EmbeddingPlan:
    model: str
    inputs: tuple[str, ...]
    prompt_tokens: int
    dimensions: int
    base64: bool


def _embedding_inputs(value: Any) -> tuple[tuple[str, ...], int]:
    """Inputs as hashable text plus their token count; token arrays count one token per id."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise BadRequestError(
            "Invalid 'input': expected a non-empty string or array.", param="input"
        )
    if all(isinstance(item, int) and not isinstance(item, bool) for item in value):
        value = [value]
    texts: list[str] = []
    tokens = 0
    for item in value:
        if isinstance(item, str) and item:
            texts.append(item)
            tokens += max(1, count_words(item))
        elif isinstance(item, list) and item and all(isinstance(t, int) for t in item):
            texts.append(" ".join(str(token) for token in item))
            tokens += len(item)
        else:
            raise BadRequestError(
                "Invalid 'input': items must be non-empty strings or token arrays.", param="input"
            )
    return tuple(texts), tokens


def plan_embeddings(body: Any, settings: MockSettings) -> EmbeddingPlan:
    if not isinstance(body, Mapping):
        raise BadRequestError("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequestError("Missing required parameter: 'model'.", param="model")
    if "input" not in body:
        raise BadRequestError("Missing required parameter: 'input'.", param="input")
    inputs, tokens = _embedding_inputs(body["input"])
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise BadRequestError(
            "Invalid 'encoding_format': expected 'float' or 'base64'.", param="encoding_format"
        )
    dimensions = positive_int(body, "dimensions", settings.embedding_dim) or 1
    return EmbeddingPlan(
        model=model,
        inputs=inputs,
        prompt_tokens=settings.prompt_tokens if settings.prompt_tokens is not None else tokens,
        dimensions=dimensions,
        base64=encoding == "base64",
    )


def embeddings_response(plan: EmbeddingPlan) -> dict[str, Any]:
    data: list[dict[str, Any]] = []
    for index, text in enumerate(plan.inputs):
        vector = embedding_vector(text, plan.dimensions)
        embedding: Any = float32_base64(vector) if plan.base64 else vector
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return {
        "object": "list",
        "data": data,
        "model": plan.model,
        "usage": {"prompt_tokens": plan.prompt_tokens, "total_tokens": plan.prompt_tokens},
    }
