"""The Gemini-compatible surface (docs/api.md#gemini-compatible-surface), under ``/v1beta/`` and
``/v1/`` (google-genai's default ``api_version``), with Google's error shape so the SDK raises its
own typed errors.

A Gemini request is translated to the canonical OpenAI request, queued as an interactive job
like any other (so any model can answer it, whichever provider serves it), and the OpenAI result
or chunks are translated back. ``:countTokens`` is the exception: only Gemini can count, so it is
queued in Gemini's own shape for the route's Gemini deployments, and other aliases refuse it.
``GET /v1/models`` is shared with the OpenAI surface: a request that authenticates the Gemini
way (``x-goog-api-key`` or ``?key=``) gets Google's shape.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from anygate.api import openai_compat
from anygate.api.gateway import Gateway, gateway_of
from anygate.api.request_body import read_body
from anygate.api.responses import JSONResponse
from anygate.api.sync_call import INTERRUPTED, Render
from anygate.broker import COUNT_TOKENS, JobEvent
from anygate.broker.errors import AnygateError, InvalidRequestError, ModelNotFoundError
from anygate.core.body import parse_json_object, validate
from anygate.core.capabilities import capabilities, token_counting_refused
from anygate.core.schemas import BODY_MODELS
from anygate.core.translate import (
    CHAT_FIELD_NAMES,
    ChatStreamToGemini,
    chat_response_to_gemini,
    count_tokens_job_body,
    embed_field_names,
    gemini_embed_request_to_openai,
    gemini_request_to_chat,
    openai_embeddings_to_gemini,
)

Handler = Callable[[Request], Awaitable[Response]]

GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def google_error(exc: AnygateError) -> JSONResponse:
    body = {
        "error": {
            "code": exc.status,
            "message": exc.message,
            "status": GOOGLE_STATUS.get(exc.status, "UNKNOWN"),
        }
    }
    headers = dict(exc.headers)
    if exc.retry_after is not None or exc.status in {429, 503}:
        headers["retry-after"] = str(max(1, round(exc.retry_after or 1)))
    return JSONResponse(body, status_code=exc.status, headers=headers)


def google_errors(handler: Handler) -> Handler:
    """This surface answers errors in Google's shape; everything else maps them the OpenAI way."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except AnygateError as exc:
            return google_error(exc)

    return wrapped


def _model_name(raw: str) -> str:
    return raw.removeprefix("models/")


def _gemini_model(gw: Gateway, alias: str) -> dict[str, Any]:
    """Gemini's ``Model``: ``supportedGenerationMethods`` lists exactly what anygate serves for
    the alias; no token limits, which the config does not know."""
    methods = capabilities(gw.config.models[alias], gw.config.providers).gemini_methods()
    return {
        "name": f"models/{alias}",
        "baseModelId": alias,
        "version": "anygate",
        "displayName": alias,
        "description": f"{alias} through anygate",
        "supportedGenerationMethods": methods,
    }


@google_errors
async def gemini_list_models(request: Request) -> Response:
    gw = gateway_of(request)
    await gw.auth.tenant(request, "inference")
    return JSONResponse({"models": [_gemini_model(gw, a) for a in sorted(gw.config.models)]})


@google_errors
async def gemini_get_model(request: Request) -> Response:
    gw = gateway_of(request)
    await gw.auth.tenant(request, "inference")
    alias = _model_name(request.path_params["target"])
    if alias not in gw.config.models:
        raise ModelNotFoundError(f"models/{alias} is not found.")
    return JSONResponse(_gemini_model(gw, alias))


def _wants_google(request: Request) -> bool:
    return "x-goog-api-key" in request.headers or "key" in request.query_params


async def models_list(request: Request) -> Response:
    if _wants_google(request):
        return await gemini_list_models(request)
    return await openai_compat.list_models(request)


async def models_get(request: Request) -> Response:
    if _wants_google(request):
        return await gemini_get_model(request)
    request.path_params["model"] = request.path_params["target"]
    return await openai_compat.get_model(request)


@google_errors
async def model_action(request: Request) -> Response:
    """``POST models/{model}:{method}``."""
    target = request.path_params["target"]
    alias, sep, method = target.rpartition(":")
    if not sep:
        raise InvalidRequestError(f"expected models/{{model}}:{{method}}, got {target!r}")
    alias = _model_name(alias)
    gw = gateway_of(request)
    request.state.tenant = await gw.auth.tenant(request, "inference")
    body = parse_json_object(
        await read_body(request, gw.config.server.max_body_bytes), gw.config.server.max_json_depth
    )
    if method == "generateContent":
        return await _generate(request, alias, body)
    if method == "streamGenerateContent":
        return await _stream_generate(request, alias, body)
    if method in {"embedContent", "batchEmbedContents"}:
        return await _embed(request, alias, body, batch=method == "batchEmbedContents")
    if method == "countTokens":
        return await _count_tokens(request, alias, body)
    raise InvalidRequestError(f"method {method!r} is not supported by this gateway")


def _chat(body: dict[str, Any], alias: str, *, stream: bool) -> dict[str, Any]:
    """The OpenAI chat request for a Gemini one, held to the same schema (and bounds) as a
    request to ``/v1/chat/completions``: whichever provider serves it gets the same body."""
    chat = gemini_request_to_chat(body, model=alias)
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    validate(BODY_MODELS[openai_compat.CHAT], chat, names=CHAT_FIELD_NAMES)
    return chat


async def _generate(request: Request, alias: str, body: dict[str, Any]) -> Response:
    chat = _chat(body, alias, stream=False)
    result, headers = await openai_compat.answer(request, openai_compat.CHAT, chat)
    return JSONResponse(chat_response_to_gemini(result), headers=headers)


async def _stream_generate(request: Request, alias: str, body: dict[str, Any]) -> Response:
    chat = _chat(body, alias, stream=True)
    sse = request.query_params.get("alt") == "sse"
    return await openai_compat.answer_stream(
        request,
        chat,
        functools.partial(_gemini_render, sse=sse),
        "text/event-stream" if sse else "application/json",
    )


def _gemini_render(job_id: str, *, sse: bool) -> tuple[Render, Callable[[], bytes] | None]:
    """Translate each OpenAI chunk to Gemini's as it arrives (SSE with ``alt=sse``, else one
    JSON array written piece by piece, as Google does). A keep-alive is a bare line break:
    google-genai takes any other non-``data:`` line for JSON (an SSE comment would break it),
    and whitespace is valid anywhere in a JSON array."""
    translator = ChatStreamToGemini()
    sent = 0
    chunked = False

    def frame(piece: dict[str, Any]) -> bytes:
        nonlocal sent
        data = orjson.dumps(piece)
        sent += 1
        if sse:
            return b"data: " + data + b"\r\n\r\n"
        return (b"[" if sent == 1 else b",\r\n") + data

    def render(event: JobEvent) -> tuple[list[bytes], bool | None]:
        nonlocal chunked
        if event.type == "chunk":
            chunked = True
            return [frame(p) for p in translator.feed(orjson.loads(event.data))], None
        if event.type == "keepalive":
            return [b"\r\n"], None
        if event.type == "completed":
            return [frame(p) for p in translator.close()], True
        if event.type == "retry" and not chunked:
            return [], None  # nothing was sent yet: the next attempt answers
        if event.type in {"retry", INTERRUPTED} or event.terminal:
            error = orjson.loads(event.data).get("error") or {}
            problem = {
                "error": {
                    "code": 502,
                    "status": "UNAVAILABLE",
                    "message": str(
                        error.get("message")
                        or f"the answer was interrupted ({event.type}); "
                        f"the job's result will be at /v1/jobs/{job_id}"
                    ),
                }
            }
            return [frame(problem)], event.terminal
        return [], None

    def close_array() -> bytes:
        return b"[]" if sent == 0 else b"]"

    return render, None if sse else close_array


async def _embed(request: Request, alias: str, body: dict[str, Any], *, batch: bool) -> Response:
    openai_body = gemini_embed_request_to_openai(body, model=alias, batch=batch)
    validate(
        BODY_MODELS[openai_compat.EMBEDDINGS], openai_body, names=embed_field_names(batch=batch)
    )
    result, headers = await openai_compat.answer(request, openai_compat.EMBEDDINGS, openai_body)
    return JSONResponse(openai_embeddings_to_gemini(result, batch=batch), headers=headers)


async def _count_tokens(request: Request, alias: str, body: dict[str, Any]) -> Response:
    """Gemini's own count, asked of a Gemini deployment through the queue like any upstream
    call (docs/api.md#counttokens); an alias that Gemini does not serve is a 400 saying why,
    never an estimate. Not cached: the answer is the provider's, each time."""
    gw = gateway_of(request)
    route = gw.config.models.get(alias)
    if route is None:
        raise ModelNotFoundError(f"models/{alias} is not found.")
    if (refused := token_counting_refused(alias, route, gw.config.providers)) is not None:
        raise refused
    job_body = count_tokens_job_body(body, alias)
    call = await openai_compat.sync_job(request, COUNT_TOKENS, job_body, stream=False)
    async with call:
        result = await openai_compat.wait_result(call)
    return JSONResponse(result, headers=openai_compat.job_headers(call))


ROUTES = [
    Route("/v1beta/models", gemini_list_models, methods=["GET"]),
    Route("/v1beta/models/{target}", gemini_get_model, methods=["GET"]),
    Route("/v1beta/models/{target}", model_action, methods=["POST"]),
    Route("/v1/models", models_list, methods=["GET"]),
    Route("/v1/models/{target}", models_get, methods=["GET"]),
    Route("/v1/models/{target}", model_action, methods=["POST"]),
]
