"""Gemini (Generative Language API) wire format: request validation, responses, chunks, errors.

Shapes follow google-genai's `GenerateContentResponse`, `EmbedContentResponse`,
`CountTokensResponse` and `Model` as they arrive over REST (camelCase), and Google's
`{"error": {"code", "message", "status", "details"}}` error envelope.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from anygate.ops.mock_provider.common import (
    BadRequestError,
    Completion,
    Shaping,
    count_words,
    embedding_vector,
    json_reply,
    reply_text,
    shape_text,
    split_chunks,
    tool_completion,
    tool_result_text,
)
from anygate.ops.mock_provider.settings import MockSettings

STATUS_NAMES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool": "STOP"}
_CHAT_METHODS = ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"]
_EMBED_METHODS = ["embedContent", "countTextTokens", "countTokens", "asyncBatchEmbedContent"]
MODELS: tuple[str, ...] = (
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-2.5-pro",
    "gemini-embedding-001",
    "mock-model",
    "text-embedding-004",
)
_MAX_CANDIDATES = 8


@dataclass(frozen=True, slots=True)
class GeneratePlan:
    """What the mock will answer to one generateContent request."""

    model: str
    prompt_tokens: int
    candidates_tokens: int
    completions: tuple[Completion, ...]
    chunk_count: int


def error_body(
    code: int, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "status": STATUS_NAMES.get(code, "UNKNOWN"),
    }
    if details:
        error["details"] = details
    return {"error": error}


def duration(seconds: float) -> str:
    """google.protobuf.Duration in its JSON form, as RetryInfo.retryDelay carries it."""
    return f"{seconds:g}s"


def fault_error(status: int, retry_after: float | None) -> dict[str, Any]:
    if status == 429:
        details = [
            {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": duration(retry_after if retry_after is not None else 1),
            }
        ]
        return error_body(
            429,
            "You exceeded your current quota, please check your plan and billing details."
            " (mock fault)",
            details,
        )
    if status == 503:
        return error_body(503, "The model is overloaded. Please try again later.")
    return error_body(500, "An internal error has occurred. Please retry or report the issue.")


def missing_key_error() -> dict[str, Any]:
    return error_body(
        401,
        "Request is missing required authentication credential. Expected an API key"
        " in the x-goog-api-key header or the key query parameter.",
    )


def invalid_key_error() -> dict[str, Any]:
    return error_body(
        400,
        "API key not valid. Please pass a valid API key.",
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        ],
    )


def _parts_text(content: Any) -> str:
    if not isinstance(content, Mapping):
        return ""
    parts = content.get("parts")
    if not isinstance(parts, list):
        return ""
    return " ".join(
        str(part["text"]) for part in parts if isinstance(part, Mapping) and "text" in part
    )


def _function_response(content: Mapping[str, Any]) -> str | None:
    for part in content.get("parts") or []:
        if isinstance(part, Mapping) and isinstance(part.get("functionResponse"), Mapping):
            response = part["functionResponse"]
            payload = orjson.dumps(response.get("response", {})).decode()
            return f"{response.get('name', 'tool')}: {payload}"
    return None


def _contents(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise BadRequestError("* GenerateContentRequest.contents: contents is not specified")
    for index, content in enumerate(contents):
        if not isinstance(content, Mapping) or not isinstance(content.get("parts"), list):
            raise BadRequestError(f"* GenerateContentRequest.contents[{index}].parts: must be set")
    return contents


def prompt_token_count(body: Mapping[str, Any], settings: MockSettings) -> int:
    if settings.prompt_tokens is not None:
        return settings.prompt_tokens
    texts = [_parts_text(content) for content in body.get("contents") or []]
    texts.append(_parts_text(body.get("systemInstruction")))
    return max(1, sum(count_words(text) for text in texts))


def _chosen_function(body: Mapping[str, Any]) -> tuple[str, Any] | None:
    declarations: dict[str, Any] = {}
    for tool in body.get("tools") or []:
        if not isinstance(tool, Mapping):
            continue
        for declaration in tool.get("functionDeclarations") or []:
            if isinstance(declaration, Mapping) and isinstance(declaration.get("name"), str):
                schema = declaration.get("parametersJsonSchema", declaration.get("parameters"))
                declarations[declaration["name"]] = schema
    if not declarations:
        return None
    config = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    if config.get("mode") == "NONE":
        return None
    allowed = [name for name in config.get("allowedFunctionNames") or [] if name in declarations]
    name = allowed[0] if allowed else next(iter(declarations))
    return name, declarations[name]


def _bounded_int(
    config: Mapping[str, Any], name: str, default: int | None, upper: int | None = None
) -> int | None:
    value = config.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequestError(f"* GenerationConfig.{name}: must be a positive integer")
    if upper is not None and value > upper:
        raise BadRequestError(f"* GenerationConfig.{name}: must be at most {upper}")
    return value


def plan_generate(body: Any, model: str, settings: MockSettings) -> GeneratePlan:
    """Validate a generateContent request and decide each candidate's content."""
    if not isinstance(body, Mapping):
        raise BadRequestError("Invalid JSON payload received. Expected an object.")
    contents = _contents(body)
    config = body.get("generationConfig") or {}
    if not isinstance(config, Mapping):
        raise BadRequestError('Invalid JSON payload received. Unknown name "generationConfig".')
    count = _bounded_int(config, "candidateCount", 1, _MAX_CANDIDATES) or 1
    stops = config.get("stopSequences") or []
    if not isinstance(stops, list) or not all(isinstance(stop, str) for stop in stops):
        raise BadRequestError("* GenerationConfig.stop_sequences: must be a list of strings")
    shaping = Shaping(
        chunk_count=settings.chunk_count,
        max_words=_bounded_int(config, "maxOutputTokens", None),
        stops=tuple(stops),
    )
    completions = tuple(
        _complete(body, contents, config, shaping, variant) for variant in range(count)
    )
    return GeneratePlan(
        model=model,
        prompt_tokens=prompt_token_count(body, settings),
        candidates_tokens=(
            settings.completion_tokens
            if settings.completion_tokens is not None
            else sum(completion.tokens for completion in completions)
        ),
        completions=completions,
        chunk_count=settings.chunk_count,
    )


def _complete(
    body: Mapping[str, Any],
    contents: list[Mapping[str, Any]],
    config: Mapping[str, Any],
    shaping: Shaping,
    variant: int,
) -> Completion:
    result = _function_response(contents[-1])
    if result is not None:
        return shape_text(tool_result_text(result, chunk_count=shaping.chunk_count), shaping)
    function = _chosen_function(body)
    if function is not None:
        return tool_completion(*function)
    user_texts = [
        _parts_text(content) for content in contents if content.get("role", "user") == "user"
    ]
    prompt = user_texts[-1] if user_texts else _parts_text(contents[-1])
    text = reply_text(prompt, variant=variant, chunk_count=shaping.chunk_count)
    if config.get("responseMimeType") == "application/json":
        schema = config.get("responseJsonSchema", config.get("responseSchema"))
        text = json_reply(schema, text)
    return shape_text(text, shaping)


def usage_metadata(prompt_tokens: int, candidates_tokens: int | None) -> dict[str, Any]:
    """Usage as Gemini reports it; intermediate stream chunks carry only the prompt side."""
    usage: dict[str, Any] = {"promptTokenCount": prompt_tokens}
    if candidates_tokens is not None:
        usage["candidatesTokenCount"] = candidates_tokens
    usage["totalTokenCount"] = prompt_tokens + (candidates_tokens or 0)
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt_tokens}]
    return usage


def _candidate(index: int, parts: list[dict[str, Any]], finish: str | None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
    if finish is not None:
        candidate["finishReason"] = finish
    candidate["index"] = index
    return candidate


def _whole_parts(completion: Completion) -> list[dict[str, Any]]:
    call = completion.tool_call
    if call is not None:
        return [{"functionCall": {"name": call.name, "args": call.arguments}}]
    return [{"text": completion.text}]


def generate_response(plan: GeneratePlan, *, response_id: str) -> dict[str, Any]:
    return {
        "candidates": [
            _candidate(index, _whole_parts(completion), _FINISH[completion.finish])
            for index, completion in enumerate(plan.completions)
        ],
        "usageMetadata": usage_metadata(plan.prompt_tokens, plan.candidates_tokens),
        "modelVersion": plan.model,
        "responseId": response_id,
    }


def stream_chunks(plan: GeneratePlan, *, response_id: str) -> list[dict[str, Any]]:
    """The streamed GenerateContentResponses; text pieces concatenate to the unary reply.

    A function call arrives whole in one chunk, as Gemini sends it. The finishing chunk of the
    stream carries the full usage; earlier ones only the prompt count.
    """
    pieces: list[list[list[dict[str, Any]]]] = []
    for completion in plan.completions:
        if completion.tool_call is not None:
            pieces.append([_whole_parts(completion)])
        else:
            texts = split_chunks(completion.text, plan.chunk_count) or [""]
            pieces.append([[{"text": text}] for text in texts])
    steps = max(len(candidate) for candidate in pieces)
    chunks: list[dict[str, Any]] = []
    for step in range(steps):
        candidates = []
        for index, candidate_pieces in enumerate(pieces):
            if step < len(candidate_pieces):
                last = step == len(candidate_pieces) - 1
                finish = _FINISH[plan.completions[index].finish] if last else None
                candidates.append(_candidate(index, candidate_pieces[step], finish))
        final = step == steps - 1
        chunks.append(
            {
                "candidates": candidates,
                "usageMetadata": usage_metadata(
                    plan.prompt_tokens, plan.candidates_tokens if final else None
                ),
                "modelVersion": plan.model,
                "responseId": response_id,
            }
        )
    return chunks


def _embed_request(request: Any, settings: MockSettings, where: str) -> tuple[str, int]:
    if not isinstance(request, Mapping):
        raise BadRequestError(f"* {where}: must be an object")
    text = _parts_text(request.get("content"))
    if not text:
        raise BadRequestError(f"* {where}.content: content is not specified")
    dimensions = request.get("outputDimensionality")
    if dimensions is None:
        return text, settings.embedding_dim
    if isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1:
        raise BadRequestError(f"* {where}.output_dimensionality: must be a positive integer")
    return text, dimensions


def embed_content_response(body: Any, settings: MockSettings) -> dict[str, Any]:
    text, dimensions = _embed_request(body, settings, "EmbedContentRequest")
    return {"embedding": {"values": embedding_vector(text, dimensions)}}


def batch_embed_response(body: Any, settings: MockSettings) -> dict[str, Any]:
    requests = body.get("requests") if isinstance(body, Mapping) else None
    if not isinstance(requests, list) or not requests:
        raise BadRequestError("* BatchEmbedContentsRequest.requests: requests is not specified")
    embeddings = []
    for index, request in enumerate(requests):
        text, dimensions = _embed_request(
            request, settings, f"BatchEmbedContentsRequest.requests[{index}]"
        )
        embeddings.append({"values": embedding_vector(text, dimensions)})
    return {"embeddings": embeddings}


def embed_token_count(requests: list[Any], settings: MockSettings) -> int:
    """What validated embed requests cost: their words, at least one per text, as OpenAI's
    embeddings count them; a fixed `prompt_tokens` stands for the whole call, as there."""
    if settings.prompt_tokens is not None:
        return settings.prompt_tokens
    return sum(
        max(1, count_words(_parts_text(request.get("content"))))
        for request in requests
        if isinstance(request, Mapping)
    )


def count_tokens_response(body: Any, settings: MockSettings) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise BadRequestError("Invalid JSON payload received. Expected an object.")
    inner = body.get("generateContentRequest")
    source = inner if isinstance(inner, Mapping) else body
    if not isinstance(source.get("contents"), list):
        raise BadRequestError("* CountTokensRequest.contents: contents is not specified")
    total = prompt_token_count(source, settings)
    return {
        "totalTokens": total,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}],
    }


def model_object(model: str) -> dict[str, Any]:
    embedding = "embedding" in model
    entry: dict[str, Any] = {
        "name": f"models/{model}",
        "version": "001",
        "displayName": model.replace("-", " ").title(),
        "description": f"Mock of {model}.",
        "inputTokenLimit": 2048 if embedding else 1_048_576,
        "outputTokenLimit": 1 if embedding else 65_536,
        "supportedGenerationMethods": _EMBED_METHODS if embedding else _CHAT_METHODS,
    }
    if not embedding:
        entry.update({"temperature": 1, "topP": 0.95, "topK": 64, "maxTemperature": 2})
    return entry


def models_response(page_size: int | None, page_token: str | None) -> dict[str, Any]:
    """One page of the catalogue; the page token is the offset, opaque to clients anyway."""
    start = int(page_token) if page_token and page_token.isdigit() else 0
    size = page_size if page_size and page_size > 0 else 50
    page = MODELS[start : start + size]
    body: dict[str, Any] = {"models": [model_object(model) for model in page]}
    if start + size < len(MODELS):
        body["nextPageToken"] = str(start + size)
    return body
