"""``/openapi.json`` rows for the compatible surfaces (docs/api.md#openai-compatible-surface,
#gemini-compatible-surface): described briefly, each pointing to its upstream reference; the
OpenAI bodies have the schemas the server checks them with."""

from __future__ import annotations

from anygate.api.openapi_table import JSON, Answer, Body, Op, schema_ref

OPENAI_SPEC = "https://github.com/openai/openai-openapi"
GEMINI_DOCS = "https://ai.google.dev/api"

CHAT_EXAMPLE: JSON = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Say hi"}],
    "max_tokens": 64,
}
EMBEDDINGS_EXAMPLE: JSON = {"model": "text-embedding-3-small", "input": ["hello", "world"]}
GEMINI_EXAMPLE: JSON = {"contents": [{"role": "user", "parts": [{"text": "Say hi"}]}]}

SYNC_HEADERS = ("x-anygate-job-id", "x-anygate-cache")
GEMINI_REQUEST: JSON = {
    "type": "object",
    "description": "The Gemini request of the method in `target`: `generateContent`'s and "
    "`streamGenerateContent`'s `GenerateContentRequest`, `embedContent`'s "
    "`EmbedContentRequest`, `batchEmbedContents`' `BatchEmbedContentsRequest`, "
    "`countTokens`' `CountTokensRequest`. A field with no OpenAI counterpart is a 400 "
    "`untranslatable_field` (docs/translation.md).",
}


def _openai(path: str, name: str) -> JSON:
    return {
        "description": f"OpenAI's {name} (openapi.yaml in {OPENAI_SPEC})",
        "url": f"https://platform.openai.com/docs/api-reference/{path}",
    }


def _gemini(path: str) -> JSON:
    return {"description": "Google's Gemini API reference", "url": f"{GEMINI_DOCS}/{path}"}


OPENAI = [
    Op(
        "POST",
        "/v1/chat/completions",
        "createChatCompletion",
        "openai",
        "OpenAI chat completion, any model alias",
        "inference",
        (
            Answer(
                200,
                "A `chat.completion`, or with `stream: true` SSE `chat.completion.chunk`s "
                "ending in `data: [DONE]`.",
                headers=(*SYNC_HEADERS, "x-accel-buffering"),
                content={
                    "application/json": schema_ref("Upstream"),
                    "text/event-stream": {"type": "string"},
                },
            ),
        ),
        description="Runs as an `interactive` job the call waits for; its id is in "
        "`x-anygate-job-id` and the result stays readable at `GET /v1/jobs/{id}`.",
        params=("CacheMode", "ProviderKey"),
        body=Body(schema_ref("ChatCompletionBody"), CHAT_EXAMPLE),
        errors=(400, 404, 413, 502, 504),
        docs=_openai("chat/create", "CreateChatCompletionRequest"),
    ),
    Op(
        "POST",
        "/v1/embeddings",
        "createEmbedding",
        "openai",
        "OpenAI embeddings, any embedding model alias",
        "inference",
        (Answer(200, "OpenAI's embedding list.", schema_ref("Upstream"), SYNC_HEADERS),),
        params=("CacheMode", "ProviderKey"),
        body=Body(schema_ref("EmbeddingsBody"), EMBEDDINGS_EXAMPLE),
        errors=(400, 404, 413, 502, 504),
        docs=_openai("embeddings/create", "CreateEmbeddingRequest"),
    ),
]

MODELS_NOTE = (
    "With `x-goog-api-key` or `?key=` the answer has Gemini's shape (and errors Google's), "
    "for `google-genai` with `api_version='v1'`."
)

SHARED_MODELS = [
    Op(
        "GET",
        "/v1/models",
        "listModels",
        "openai",
        "The configured model aliases",
        "inference",
        (
            Answer(
                200,
                "OpenAI's model list, or Gemini's.",
                {"oneOf": [schema_ref("ModelList"), schema_ref("GeminiModelList")]},
            ),
        ),
        description=MODELS_NOTE,
        docs=_openai("models/list", "ListModelsResponse"),
    ),
    Op(
        "GET",
        "/v1/models/{target}",
        "getModel",
        "openai",
        "One model alias",
        "inference",
        (
            Answer(
                200,
                "OpenAI's model object, or Gemini's.",
                {"oneOf": [schema_ref("Model"), schema_ref("GeminiModel")]},
            ),
        ),
        description=MODELS_NOTE,
        errors=(404,),
        docs=_openai("models/retrieve", "Model"),
    ),
]


def _action(prefix: str, op_id: str) -> Op:
    return Op(
        "POST",
        f"{prefix}/models/{{target}}",
        op_id,
        "gemini",
        "Gemini `generateContent`, `streamGenerateContent`, `embedContent`, "
        "`batchEmbedContents`, `countTokens`: `target` is `<model>:<method>`",
        "inference",
        (
            Answer(
                200,
                "Gemini's answer; `streamGenerateContent` streams SSE with `?alt=sse`, else a "
                "JSON array written piece by piece.",
                headers=SYNC_HEADERS,
                content={
                    "application/json": {
                        "anyOf": [
                            schema_ref("Upstream"),
                            {"type": "array", "items": schema_ref("Upstream")},
                        ]
                    },
                    "text/event-stream": {"type": "string"},
                },
            ),
        ),
        description="Translated to OpenAI's format and run as an `interactive` job, so any "
        "model alias answers. `countTokens` is Gemini's own count, for aliases served by "
        "Gemini only (docs/api.md#counttokens). Another method is a 400 naming it.",
        params=("Alt", "CacheMode", "ProviderKey"),
        body=Body(GEMINI_REQUEST, GEMINI_EXAMPLE),
        errors=(400, 404, 413, 502, 504),
        shape="google",
        docs=_gemini("generate-content"),
    )


GEMINI = [
    Op(
        "GET",
        "/v1beta/models",
        "geminiListModels",
        "gemini",
        "The configured model aliases, Gemini's shape",
        "inference",
        (Answer(200, "Gemini's model list.", schema_ref("GeminiModelList")),),
        shape="google",
        docs=_gemini("models"),
    ),
    Op(
        "GET",
        "/v1beta/models/{target}",
        "geminiGetModel",
        "gemini",
        "One model alias, Gemini's shape",
        "inference",
        (Answer(200, "Gemini's model object.", schema_ref("GeminiModel")),),
        errors=(404,),
        shape="google",
        docs=_gemini("models"),
    ),
    _action("/v1beta", "geminiModelAction"),
    _action("/v1", "geminiModelActionV1"),
]


def compat_ops() -> list[Op]:
    return [*OPENAI, *SHARED_MODELS, *GEMINI]
