"""The OpenAI-compatible surface (docs/api.md#openai-compatible-surface): chat completions,
embeddings, models.

Each request becomes an ``interactive`` job; the caller waits on the job's events and gets the
provider-neutral OpenAI-format result, or, streamed, each chunk as the worker relays it. Any
configured model answers here, whichever provider serves it. A request the response cache can
answer (``api/response_cache.py``) gets no job at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from anygate.api import response_cache
from anygate.api.cache_policy import replay, replay_events
from anygate.api.gateway import Gateway, gateway_of
from anygate.api.provider_keys import client_provider_key
from anygate.api.request_body import read_body
from anygate.api.responses import SSE_KEEPALIVE, JSONResponse, RelayResponse
from anygate.api.sync_call import INTERRUPTED, Render, SyncCall, outcome, relay
from anygate.broker import JobEvent, NewJob
from anygate.broker.errors import (
    AnygateError,
    DeploymentPausedError,
    InvalidRequestError,
    ModelNotFoundError,
)
from anygate.broker.routing import encode_plan
from anygate.config import Priority
from anygate.core.body import parse_json_object, validate
from anygate.core.capabilities import capabilities
from anygate.core.schemas import BODY_MODELS
from anygate.telemetry import tracing

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}

Renderer = Callable[[str], tuple[Render, Callable[[], bytes] | None]]
"""Builds a surface's stream renderer (and closing tail) for the job id errors name."""


async def sync_job(
    request: Request, endpoint: str, body: dict[str, Any], *, stream: bool
) -> SyncCall:
    """Plan, then build the call (entered by the caller); shared by both compatible surfaces."""
    gw = gateway_of(request)
    tenant = request.state.tenant
    steps = await gw.planner.plan(endpoint, body)
    client_key, steps = client_provider_key(request, tenant, steps, gw.config)
    try:
        encoded = orjson.dumps(body)
    except orjson.JSONEncodeError as exc:  # a Gemini integer translated past 64 bits
        raise InvalidRequestError(f"request body cannot be forwarded: {exc}") from None
    job = NewJob(
        tenant=tenant.id,
        pool=steps[0].provider,
        endpoint=endpoint,
        model=str(body["model"]),
        body=encoded,
        priority=Priority.INTERACTIVE,
        stream=stream,
        tenant_weight=tenant.weight,
        quotas=tenant.quotas,
        client_key=client_key,
        plan=encode_plan(steps, alias=str(body["model"])),
        trace=tracing.spans.carrier() if tracing.enabled else "",
    )
    return SyncCall(gw, request, job)


async def wait_result(call: SyncCall) -> dict[str, Any]:
    """The result of a non-streamed call; errors carry the job id for a later fetch."""
    try:
        async for event in call.events():
            if event.terminal:
                return outcome(event)
    except AnygateError as exc:
        exc.headers.update(failed_call_headers(call, exc))
        raise
    raise AssertionError("unreachable: events() ends with a terminal event")


async def open_stream(call: SyncCall) -> tuple[JobEvent, contextlib.AsyncExitStack]:
    """Enter the call and wait for its first chunk (or its end): until then a failure can still
    be answered with an HTTP status. A call with nothing to send for ``server.keepalive_s``
    starts its response anyway (with a keep-alive), so that no proxy cuts a caller who waits;
    a failure is then told in the stream.

    Returns the first event and the call's ownership: an exit stack that holds the entered
    call, handed to ``relay`` (which closes it when the stream ends, early or not). Until the
    hand-over, any failure closes the call here."""
    async with contextlib.AsyncExitStack() as owner:
        await owner.enter_async_context(call)
        try:
            async for event in call.events():
                if event.type in {"chunk", "keepalive"} or event.terminal:
                    if event.terminal:
                        outcome(event)  # raises for failures
                    call.streamed = event.type == "chunk"
                    return event, owner.pop_all()
        except AnygateError as exc:
            exc.headers.update(failed_call_headers(call, exc))
            raise
    raise AssertionError("unreachable: events() ends with a terminal event")


def job_headers(call: SyncCall, *, retried: bool = False) -> dict[str, str]:
    headers = {"x-anygate-job-id": call.job_id}
    if retried:
        headers["x-should-retry"] = "false"  # the gateway already retried upstream itself
    return headers


def failed_call_headers(call: SyncCall, exc: AnygateError) -> dict[str, str]:
    """Headers of a failed call: the job id, and ``x-should-retry: false`` unless the failure
    asks the caller to come back later (a pause no deployment could wait out: the SDKs retry
    after its ``Retry-After``)."""
    return job_headers(call, retried=not isinstance(exc, DeploymentPausedError))


async def answer(
    request: Request, endpoint: str, body: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """A non-streamed call's result and headers, through the response cache when it applies."""
    slot = response_cache.slot_for(request, endpoint, body)
    call = await sync_job(request, endpoint, body, stream=False)
    if slot is None:
        async with call:
            return await wait_result(call), job_headers(call)
    if (shared := await slot.shared(call.job_id)) is not None:
        return shared, response_cache.HIT
    result = None
    try:
        async with call:
            result = await wait_result(call)
    finally:
        await slot.done(result)
    return result, {**job_headers(call), **response_cache.MISS}


async def answer_stream(
    request: Request, body: dict[str, Any], renderer: Renderer, media_type: str
) -> Response:
    """A streamed chat call through the response cache when it applies. A cached answer is
    replayed as the chunk events its job would have sent, through the same renderer."""
    slot = response_cache.slot_for(request, CHAT, body)
    call = await sync_job(request, CHAT, body, stream=True)
    if slot is not None and (shared := await slot.shared(call.job_id)) is not None:
        render, tail = renderer("")
        content = replay(replay_events(shared), render, tail)
        headers = {**STREAM_HEADERS, **response_cache.HIT}
        return Response(content, media_type=media_type, headers=headers)
    try:
        first, owner = await open_stream(call)
    except BaseException:
        if slot is not None:
            await slot.done(None)
        raise
    render, tail = renderer(call.job_id)
    headers = {**STREAM_HEADERS, **job_headers(call)}
    if slot is None:
        return RelayResponse(
            relay(call, first, owner, render, tail=tail), media_type=media_type, headers=headers
        )
    stream = slot.storing(relay(call, first, owner, slot.capture(render), tail=tail))
    return RelayResponse(stream, media_type=media_type, headers={**headers, **response_cache.MISS})


async def chat_completions(request: Request) -> Response:
    gw = gateway_of(request)
    request.state.tenant = await gw.auth.tenant(request, "inference")
    body = parse_json_object(
        await read_body(request, gw.config.server.max_body_bytes), gw.config.server.max_json_depth
    )
    validate(BODY_MODELS[CHAT], body)
    stream = body.get("stream") is True
    options = body.get("stream_options")
    if options is not None and not stream:
        raise InvalidRequestError(
            "stream_options: only allowed when stream is true", param="stream_options"
        )
    include_usage = bool(isinstance(options, dict) and options.get("include_usage"))
    if not stream:
        result, headers = await answer(request, CHAT, body)
        return JSONResponse(result, headers=headers)
    return await answer_stream(
        request,
        body,
        lambda job_id: (_chat_render(job_id, include_usage), None),
        "text/event-stream",
    )


def _is_usage_chunk(data: str) -> bool:
    if '"usage"' not in data:  # most chunks: no need to parse them
        return False
    chunk = orjson.loads(data)
    return not chunk.get("choices") and chunk.get("usage") is not None


def _chat_render(job_id: str, include_usage: bool) -> Render:
    """Chunks as OpenAI SSE; the usage chunk only when the caller asked for it. A ``retry``
    before any chunk was sent changes nothing for the caller (the next attempt answers); after
    one, the stream ends with an error naming the job."""
    sent = False

    def render(event: JobEvent) -> tuple[list[bytes], bool | None]:
        nonlocal sent
        if event.type == "chunk":
            sent = True
            if include_usage or not _is_usage_chunk(event.data):
                return [b"data: " + event.data.encode() + b"\n\n"], None
            return [], None
        if event.type == "keepalive":
            return [SSE_KEEPALIVE], None
        if event.type == "completed":
            return [b"data: [DONE]\n\n"], True
        if event.type == "retry" and not sent:
            return [], None
        if event.type in {"retry", INTERRUPTED} or event.terminal:
            # Chunks already sent cannot be taken back: end the stream with an error the SDKs
            # raise, naming the job whose final answer can still be fetched.
            return [_stream_error(job_id, event)], event.terminal
        return [], None

    return render


def _stream_error(job_id: str, event: JobEvent) -> bytes:
    data = orjson.loads(event.data)
    error = data.get("error") or {}
    message = (
        f"the answer was interrupted ({event.type}); the job continues and its final result "
        f"will be at /v1/jobs/{job_id}"
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
    request.state.tenant = await gw.auth.tenant(request, "inference")
    body = parse_json_object(
        await read_body(request, gw.config.server.max_body_bytes), gw.config.server.max_json_depth
    )
    validate(BODY_MODELS[EMBEDDINGS], body)
    result, headers = await answer(request, EMBEDDINGS, body)
    return JSONResponse(result, headers=headers)


def _model_object(gw: Gateway, alias: str) -> dict[str, Any]:
    """OpenAI's model object, and in ``anygate`` what the alias can do through the gateway
    (docs/api.md#model-capabilities): clients that know only OpenAI's fields ignore it."""
    route = gw.config.models[alias]
    return {
        "id": alias,
        "object": "model",
        "created": 0,
        "owned_by": route.deployments[0].provider,
        "anygate": capabilities(route, gw.config.providers).to_api(),
    }


async def list_models(request: Request) -> Response:
    gw = gateway_of(request)
    await gw.auth.tenant(request, "inference")
    data = [_model_object(gw, alias) for alias in sorted(gw.config.models)]
    return JSONResponse({"object": "list", "data": data})


async def get_model(request: Request) -> Response:
    gw = gateway_of(request)
    await gw.auth.tenant(request, "inference")
    alias = request.path_params["model"]
    if alias not in gw.config.models:
        raise ModelNotFoundError(f"The model `{alias}` does not exist.", param="model")
    return JSONResponse(_model_object(gw, alias))


ROUTES = [
    Route(CHAT, chat_completions, methods=["POST"]),
    Route(EMBEDDINGS, embeddings, methods=["POST"]),
]
