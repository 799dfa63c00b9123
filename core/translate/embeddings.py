"""Embeddings both ways: OpenAI ``/v1/embeddings`` ↔ Gemini ``embedContent``/``batchEmbedContents``.

OpenAI embeds a string or a list of strings in one call; Gemini has a single-content method and
a batch method whose every request names the model. Gemini always answers floats; OpenAI's
``encoding_format: base64`` (what the openai SDK asks for by default) is the little-endian
float32 bytes of the vector, base64-encoded, which is what is produced here.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping
from typing import Any

from anygate.core.translate.common import Fields
from anygate.core.translate.errors import invalid, untranslatable
from anygate.core.translate.usage import embedding_usage_to_gemini, embedding_usage_to_openai

_OPENAI_FIELDS = frozenset({"input", "model", "encoding_format", "dimensions", "user"})
_GEMINI_REQUEST = frozenset({"content", "model", "taskType", "title", "outputDimensionality"})
_REFUSED = {
    "taskType": "OpenAI embeddings have no task type",
    "title": "OpenAI embeddings have no document title",
}


def _model_name(model: str) -> str:
    return model if "/" in model else f"models/{model}"


def _content(text: str) -> dict[str, Any]:
    return {"parts": [{"text": text}]}


def embeddings_request_to_gemini(
    body: Mapping[str, Any], upstream_model: str
) -> tuple[str, dict[str, Any]]:
    """(method, body): ``embedContent`` for one string, ``batchEmbedContents`` for a list."""
    fields = Fields(body, "")
    fields.reject_unknown(_OPENAI_FIELDS, "Gemini's embed request")
    encoding = fields.string("encoding_format")
    if encoding not in {None, "float", "base64"}:
        raise invalid(fields.path("encoding_format"), "must be 'float' or 'base64'")
    dimensions = fields.integer("dimensions")
    extra: dict[str, Any] = {} if dimensions is None else {"outputDimensionality": dimensions}
    raw = fields.get("input")
    if isinstance(raw, str):
        return "embedContent", {"content": _content(raw), **extra}
    if not isinstance(raw, list) or not raw:
        raise invalid(fields.path("input"), "must be a string or a non-empty array of strings")
    if not all(isinstance(item, str) for item in raw):
        raise untranslatable(fields.path("input"), "Gemini embeds text, not token arrays")
    model = _model_name(upstream_model)
    requests = [{"model": model, "content": _content(text), **extra} for text in raw]
    return "batchEmbedContents", {"requests": requests}


def _float32_base64(values: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")


def _vectors(resp: Mapping[str, Any]) -> list[list[float]]:
    single = resp.get("embedding")
    entries = [single] if isinstance(single, Mapping) else list(resp.get("embeddings") or ())
    vectors = []
    for entry in entries:
        values = entry.get("values") if isinstance(entry, Mapping) else None
        vectors.append([float(v) for v in values or ()])
    return vectors


def gemini_embeddings_to_openai(
    resp: Mapping[str, Any], *, model: str, encoding_format: str | None
) -> dict[str, Any]:
    data = []
    for index, vector in enumerate(_vectors(resp)):
        embedding: list[float] | str = (
            _float32_base64(vector) if encoding_format == "base64" else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    usage = resp.get("usageMetadata")
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": embedding_usage_to_openai(usage if isinstance(usage, Mapping) else None),
    }


def _embed_text(request: Fields) -> str:
    content = request.obj("content", gemini=True)
    if content is None:
        raise invalid(request.path("content"), "is required")
    content.reject_unknown(frozenset({"parts", "role"}), "an OpenAI embedding input")
    texts = []
    where = content.path("parts")
    for index, raw in enumerate(content.array("parts") or []):
        part = Fields(raw, f"{where}[{index}]", gemini=True)
        part.reject_unknown(frozenset({"text"}), "an OpenAI embedding input (text only)")
        texts.append(part.string("text") or "")
    if not texts:
        raise invalid(content.path("parts"), "must hold at least one text part")
    # Gemini embeds a content's parts as one text; OpenAI takes that text as one input.
    return " ".join(texts)


def _embed_request(request: Fields, model: str) -> tuple[str, int | None]:
    request.reject_unknown(_GEMINI_REQUEST, "OpenAI's embeddings request")
    for key, reason in _REFUSED.items():
        if key in request:
            raise untranslatable(request.path(key), reason)
    named = request.string("model")
    if named is not None and named.removeprefix("models/") != model.removeprefix("models/"):
        raise invalid(request.path("model"), f"must be models/{model}, the model in the URL")
    return _embed_text(request), request.integer("outputDimensionality")


def embed_field_names(*, batch: bool) -> dict[str, str]:
    """Where each field of the translated request came from (see ``CHAT_FIELD_NAMES``)."""
    if batch:
        return {"input": "requests", "dimensions": "requests[].outputDimensionality"}
    return {"input": "content", "dimensions": "outputDimensionality"}


def gemini_embed_request_to_openai(
    body: Mapping[str, Any], *, model: str, batch: bool
) -> dict[str, Any]:
    fields = Fields(body, "", gemini=True)
    if not batch:
        text, dimensions = _embed_request(fields, model)
        inputs: str | list[str] = text
    else:
        fields.reject_unknown(frozenset({"requests"}), "OpenAI's embeddings request")
        requests = fields.array("requests")
        if not requests:
            raise invalid(fields.path("requests"), "must be a non-empty array")
        where = fields.path("requests")
        parsed = [
            _embed_request(Fields(raw, f"{where}[{i}]", gemini=True), model)
            for i, raw in enumerate(requests)
        ]
        dimensions = parsed[0][1]
        for index, (_, other) in enumerate(parsed):
            if other != dimensions:
                raise untranslatable(
                    f"{where}[{index}].outputDimensionality",
                    "OpenAI applies one dimensions value to the whole batch",
                )
        inputs = [text for text, _ in parsed]
    out: dict[str, Any] = {"model": model, "input": inputs, "encoding_format": "float"}
    if dimensions is not None:
        out["dimensions"] = dimensions
    return out


def _decode(embedding: Any) -> list[float]:
    if isinstance(embedding, str):
        raw = base64.b64decode(embedding)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    return [float(v) for v in embedding or ()]


def openai_embeddings_to_gemini(resp: Mapping[str, Any], *, batch: bool) -> dict[str, Any]:
    items = sorted(
        (item for item in resp.get("data") or () if isinstance(item, Mapping)),
        key=lambda item: int(item.get("index", 0)),
    )
    vectors = [{"values": _decode(item.get("embedding"))} for item in items]
    first = vectors[0] if vectors else {"values": []}
    out: dict[str, Any] = {"embeddings": vectors} if batch else {"embedding": first}
    usage = resp.get("usage")
    meta = embedding_usage_to_gemini(usage if isinstance(usage, Mapping) else None)
    if meta is not None:
        out["usageMetadata"] = meta
    return out
