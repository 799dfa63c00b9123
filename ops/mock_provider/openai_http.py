"""OpenAI endpoints: auth, body checks and the planned answer for each route."""

from __future__ import annotations

import os
import time
from typing import Any

from anygate.ops.mock_provider import openai_embeddings, openai_wire, rate_limit_wire
from anygate.ops.mock_provider.common import BadRequestError
from anygate.ops.mock_provider.exchange import (
    Exchange,
    Incoming,
    InvalidJsonError,
    json_exchange,
    sse_frames,
    sse_headers,
)
from anygate.ops.mock_provider.faults import FaultRule
from anygate.ops.mock_provider.rate_limits import Decision
from anygate.ops.mock_provider.routing import Route
from anygate.ops.mock_provider.settings import MockSettings

_JSON = b"application/json"
_SSE_END = b"\n\n"
_DONE = b"data: [DONE]\n\n"
_BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using"
    " your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was"
    " not valid JSON.)"
)


def _error(
    incoming: Incoming,
    status: int,
    body: dict[str, Any],
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> Exchange:
    return json_exchange(_JSON, incoming.request_id, status, body, extra_headers)


def _ok(incoming: Incoming, body: dict[str, Any], cost: int | None = None) -> Exchange:
    return json_exchange(_JSON, incoming.request_id, 200, body, cost=cost)


def api_key(incoming: Incoming) -> str | None:
    scheme, _, key = (incoming.authorization or b"").decode("latin-1").partition(" ")
    key = key.strip()
    return key if scheme.lower() == "bearer" and key else None


def auth_failure(incoming: Incoming, settings: MockSettings) -> Exchange | None:
    key = api_key(incoming)
    if key is None:
        message = (
            "You didn't provide an API key. You need to provide your API key in an Authorization"
            " header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
        return _error(incoming, 401, openai_wire.error_body(message))
    if settings.api_key is not None and key != settings.api_key:
        body = openai_wire.error_body("Incorrect API key provided.", code="invalid_api_key")
        return _error(incoming, 401, body)
    return None


def handle(route: Route, incoming: Incoming, settings: MockSettings) -> Exchange:
    """Plan the answer to one OpenAI request; never raises for client mistakes."""
    if route.endpoint == "not_found":
        message = f"Invalid URL ({incoming.method} {incoming.path})"
        return _error(incoming, 404, openai_wire.error_body(message))
    if route.endpoint == "method_not_allowed":
        message = f"Invalid method for URL ({incoming.method} {incoming.path})"
        return _error(incoming, 405, openai_wire.error_body(message))
    failure = auth_failure(incoming, settings)
    if failure is not None:
        return failure
    if route.endpoint == "models":
        return _ok(incoming, openai_wire.models_response())
    if route.endpoint == "model":
        model = route.model or ""
        return _ok(incoming, openai_wire.model_object(model))
    try:
        body = incoming.json()
    except InvalidJsonError:
        return _error(incoming, 400, openai_wire.error_body(_BAD_JSON))
    return answer(route.endpoint, incoming, body, settings)


def answer(endpoint: str, incoming: Incoming, body: Any, settings: MockSettings) -> Exchange:
    """A chat or embeddings answer to an authenticated request (Azure OpenAI's too)."""
    try:
        if endpoint == "embeddings":
            plan = openai_embeddings.plan_embeddings(body, settings)
            response = openai_embeddings.embeddings_response(plan)
            return _ok(incoming, response, cost=plan.prompt_tokens)
        return _chat(incoming, body, settings)
    except BadRequestError as exc:
        return _error(incoming, 400, openai_wire.error_body(exc.message, param=exc.param))


def _chat(incoming: Incoming, body: Any, settings: MockSettings) -> Exchange:
    plan = openai_wire.plan_chat(body, settings)
    completion_id = f"chatcmpl-{os.urandom(12).hex()}"
    created = int(time.time())
    cost = plan.prompt_tokens + plan.completion_tokens
    if not plan.stream:
        response = openai_wire.chat_completion(plan, completion_id=completion_id, created=created)
        return _ok(incoming, response, cost=cost)
    chunks = openai_wire.chat_chunks(plan, completion_id=completion_id, created=created)
    frames = sse_frames(chunks, _SSE_END)
    frames.append(_DONE)
    return Exchange(
        status=200,
        headers=sse_headers(incoming.request_id),
        frames=frames,
        frame_end=_SSE_END,
        cost=cost,
    )


def request_facts(route: Route, incoming: Incoming) -> tuple[str | None, bool]:
    """Model and stream flag for the request log, read even from bodies that fail validation."""
    body = incoming.parsed_or_none()
    if not isinstance(body, dict):
        return route.model, False
    model = body.get("model")
    return (model if isinstance(model, str) else route.model), body.get("stream") is True


def fault(rule: FaultRule, incoming: Incoming) -> Exchange:
    """An injected error status with OpenAI's body and, for throttling, a Retry-After header."""
    status = rule.status or 500
    headers: list[tuple[bytes, bytes]] = []
    if (status == 429 and rule.code is None) or rule.retry_after is not None:
        headers.append((b"retry-after", f"{rule.retry_after_seconds:g}".encode()))
    return _error(incoming, status, openai_wire.fault_error(status, rule.code), headers)


def rate_limited(decision: Decision, model: str, incoming: Incoming) -> Exchange:
    """A 429 for a request the rate limits refused, worded and headed as OpenAI does."""
    body, headers = rate_limit_wire.openai_refusal(decision, model)
    return _error(incoming, 429, body, headers)


def rate_headers(decision: Decision) -> list[tuple[bytes, bytes]]:
    return rate_limit_wire.openai_headers(decision)
