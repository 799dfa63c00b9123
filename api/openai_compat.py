"""The OpenAI-compatible surface (SPEC §1.1): chat completions, embeddings, models.

Each request becomes an ``interactive`` job; the caller waits on the job's events and gets the
provider-neutral OpenAI-format result, or, streamed, each chunk as the worker relays it. Any
configured model answers here, whichever provider serves it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from anygate.api.body import parse_json_object, read_body, validate
from anygate.api.gateway import Gateway, gateway_of
from anygate.api.responses import JSONResponse, RelayResponse
from anygate.api.schemas import ChatCompletionBody, EmbeddingsBody
from anygate.api.sync_call import SyncCall, outcome, relay
from anygate.broker import JobEvent, NewJob
from anygate.broker.errors import AnygateError, InvalidRequestError, ModelNotFoundError
from anygate.broker.routing import encode_plan
from anygate.config import Priority

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


async def sync_job(
    request: Request, endpoint: str, body: dict[str, Any], *, stream: bool
) -> SyncCall:
    """Plan, then build the call (entered by the caller); shared by both compatible surfaces."""
    gw = gateway_of(request)
    tenant = request.state.tenant
    steps = await gw.planner.plan(endpoint, body)
    job = NewJob(
        tenant=tenant.id,
        pool=steps[0].provider,
        endpoint=endpoint,
        model=str(body["model"]),
        body=orjson.dumps(body),
        priority=Priority.INTERACTIVE,
        stream=stream,
        tenant_weight=tenant.weight,
        plan=encode_plan(steps, alias=str(body["model"])),
    )
    return SyncCall(gw, request, job)


async def wait_result(call: SyncCall) -> dict[str, Any]:
    """The result of a non-streamed call; errors carry the job id for a later fetch."""
    try:
        async for event in call.events():
            if event.terminal:
                return outcome(event)
    except AnygateError as exc:
        exc.headers.update(job_headers(call, retried=True))
        raise
    raise AssertionError("unreachable: events() ends with a terminal event")


async def open_stream(call: SyncCall) -> JobEvent:
    """Enter the call and wait for its first chunk (or its end): until then a failure can still
    be answered with an HTTP status. From here on the streaming response owns the call; its
    relay must ``__aexit__`` it, and ends early when the call's watcher sees the caller go."""
    await call.__aenter__()
    try:
        async for event in call.events():
            if event.type == "chunk" or event.terminal:
                if event.terminal:
                    outcome(event)  # raises for failures
                call.streamed = event.type == "chunk"
                return event
    except AnygateError as exc:
        exc.headers.update(job_headers(call, retried=True))
        await call.__aexit__(None, None, None)
        raise
    except BaseException:
        await call.__aexit__(None, None, None)
        raise
    raise AssertionError("unreachable: events() ends with a terminal event")


def job_headers(call: SyncCall, *, retried: bool = False) -> dict[str, str]:
    headers = {"x-anygate-job-id": call.job_id}
    if retried:
        headers["x-should-retry"] = "false"  # the gateway already retried upstream itself
    return headers


async def chat_completions(request: Request) -> Response:
    gw = gateway_of(request)
    request.state.tenant = gw.tenants.authenticate(request)
    body = parse_json_object(await read_body(request, gw.config.server.max_body_bytes))
    validate(ChatCompletionBody, body)
    stream = body.get("stream") is True
    options = body.get("stream_options")
    if options is not None and not stream:
        raise InvalidRequestError(
            "stream_options: only allowed when stream is true", param="stream_options"
        )
    include_usage = bool(isinstance(options, dict) and options.get("include_usage"))
    call = await sync_job(request, CHAT, body, stream=stream)
    if not stream:
        async with call:
            result = await wait_result(call)
        return JSONResponse(result, headers=job_headers(call))
    first = await open_stream(call)
    return RelayResponse(
        _relay_chat(call, first, include_usage=include_usage),
        media_type="text/event-stream",
        headers={**STREAM_HEADERS, **job_headers(call)},
    )


def _is_usage_chunk(data: str) -> bool:
    if '"usage"' not in data:  # most chunks: no need to parse them
        return False
    chunk = orjson.loads(data)
    return not chunk.get("choices") and chunk.get("usage") is not None


def _relay_chat(call: SyncCall, first: JobEvent, *, include_usage: bool) -> AsyncIterator[bytes]:
    """Relay chunks as OpenAI SSE; the usage chunk only when the caller asked for it."""

    def render(event: JobEvent) -> tuple[list[bytes], bool | None]:
        if event.type == "chunk":
            if include_usage or not _is_usage_chunk(event.data):
                return [b"data: " + event.data.encode() + b"\n\n"], None
            return [], None
        if event.type == "completed":
            return [b"data: [DONE]\n\n"], True
        if event.type == "retry" or event.terminal:
            # Chunks already sent cannot be taken back: end the stream with an error the SDKs
            # raise, naming the job whose final answer can still be fetched.
            return [_stream_error(call, event)], event.terminal
        return [], None

    return relay(call, first, render)


def _stream_error(call: SyncCall, event: JobEvent) -> bytes:
    data = orjson.loads(event.data)
    error = data.get("error") or {}
    message = (
        f"the answer was interrupted ({event.type}); the job continues and its final result "
        f"will be at /v1/jobs/{call.job_id}"
        if event.type == "retry"
        else str(error.get("message") or f"the job ended {event.type}")
    )
    body = {
        "error": {
            "message": message,
            "type": error.get("type") or "upstream_error",
            "param": None,
            "code": error.get("code") or "stream_interrupted",
        }
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


async def embeddings(request: Request) -> Response:
    gw = gateway_of(request)
    request.state.tenant = gw.tenants.authenticate(request)
    body = parse_json_object(await read_body(request, gw.config.server.max_body_bytes))
    validate(EmbeddingsBody, body)
    call = await sync_job(request, EMBEDDINGS, body, stream=False)
    async with call:
        result = await wait_result(call)
    return JSONResponse(result, headers=job_headers(call))


def _model_object(gw: Gateway, alias: str) -> dict[str, Any]:
    route = gw.config.models[alias]
    return {
        "id": alias,
        "object": "model",
        "created": 0,
        "owned_by": route.deployments[0].provider,
    }


async def list_models(request: Request) -> Response:
    gw = gateway_of(request)
    gw.tenants.authenticate(request)
    data = [_model_object(gw, alias) for alias in sorted(gw.config.models)]
    return JSONResponse({"object": "list", "data": data})


async def get_model(request: Request) -> Response:
    gw = gateway_of(request)
    gw.tenants.authenticate(request)
    alias = request.path_params["model"]
    if alias not in gw.config.models:
        raise ModelNotFoundError(f"The model `{alias}` does not exist.", param="model")
    return JSONResponse(_model_object(gw, alias))


ROUTES = [
    Route(CHAT, chat_completions, methods=["POST"]),
    Route(EMBEDDINGS, embeddings, methods=["POST"]),
]
