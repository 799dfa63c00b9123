"""Gemini endpoints: API-key auth, body checks and the planned answer for each route."""

from __future__ import annotations

import base64
import os
from typing import Any

from anygate.ops.mock_provider import gemini_wire, rate_limit_wire
from anygate.ops.mock_provider.common import BadRequestError
from anygate.ops.mock_provider.exchange import (
    Exchange,
    Incoming,
    InvalidJsonError,
    array_frames,
    json_exchange,
    json_headers,
    sse_frames,
    sse_headers,
)
from anygate.ops.mock_provider.faults import FaultRule
from anygate.ops.mock_provider.rate_limits import Decision
from anygate.ops.mock_provider.routing import Route
from anygate.ops.mock_provider.settings import MockSettings

_JSON = b"application/json; charset=UTF-8"
# Google terminates each SSE event with CRLF CRLF; clients that split only on LF LF break on the
# real API, so the mock keeps the same bytes.
_SSE_END = b"\r\n\r\n"


def _error(
    incoming: Incoming, body: dict[str, Any], extra_headers: list[tuple[bytes, bytes]] | None = None
) -> Exchange:
    return json_exchange(
        _JSON, incoming.request_id, int(body["error"]["code"]), body, extra_headers
    )


def _ok(incoming: Incoming, body: dict[str, Any], cost: int | None = None) -> Exchange:
    return json_exchange(_JSON, incoming.request_id, 200, body, cost=cost)


def api_key(incoming: Incoming) -> str | None:
    if incoming.goog_api_key is not None:
        return incoming.goog_api_key.decode("latin-1").strip() or None
    return incoming.query("key") or None


def auth_failure(incoming: Incoming, settings: MockSettings) -> Exchange | None:
    key = api_key(incoming)
    if key is None:
        return _error(incoming, gemini_wire.missing_key_error())
    if settings.api_key is not None and key != settings.api_key:
        return _error(incoming, gemini_wire.invalid_key_error())
    return None


def handle(route: Route, incoming: Incoming, settings: MockSettings) -> Exchange:
    """Plan the answer to one Gemini request; never raises for client mistakes."""
    if route.endpoint == "not_found":
        message = f"Method not found: {incoming.method} {incoming.path}"
        return _error(incoming, gemini_wire.error_body(404, message))
    if route.endpoint == "method_not_allowed":
        message = f"Method not allowed: {incoming.method} {incoming.path}"
        return _error(incoming, gemini_wire.error_body(405, message))
    failure = auth_failure(incoming, settings)
    if failure is not None:
        return failure
    if route.endpoint == "models":
        size = incoming.query("pageSize")
        page_size = int(size) if size and size.isdigit() else None
        page = gemini_wire.models_response(page_size, incoming.query("pageToken"))
        return _ok(incoming, page)
    if route.endpoint == "model":
        return _ok(incoming, gemini_wire.model_object(route.model or ""))
    try:
        body = incoming.json()
    except InvalidJsonError:
        message = "Invalid JSON payload received. Unexpected token."
        return _error(incoming, gemini_wire.error_body(400, message))
    return answer(route, incoming, body, settings)


def answer(route: Route, incoming: Incoming, body: Any, settings: MockSettings) -> Exchange:
    """The answer to an authenticated request with a JSON body (Vertex AI's too)."""
    try:
        if route.endpoint == "embed":
            response = gemini_wire.embed_content_response(body, settings)
            return _ok(incoming, response, gemini_wire.embed_token_count([body], settings))
        if route.endpoint == "batch_embed":
            response = gemini_wire.batch_embed_response(body, settings)
            cost = gemini_wire.embed_token_count(body["requests"], settings)
            return _ok(incoming, response, cost)
        if route.endpoint == "count_tokens":
            return _ok(incoming, gemini_wire.count_tokens_response(body, settings))
        return _generate(route, incoming, body, settings)
    except BadRequestError as exc:
        return _error(incoming, gemini_wire.error_body(400, exc.message))


def _response_id() -> str:
    return base64.urlsafe_b64encode(os.urandom(15)).decode()


def _generate(route: Route, incoming: Incoming, body: Any, settings: MockSettings) -> Exchange:
    plan = gemini_wire.plan_generate(body, route.model or "", settings)
    response_id = _response_id()
    cost = plan.prompt_tokens + plan.candidates_tokens
    if route.endpoint == "generate":
        response = gemini_wire.generate_response(plan, response_id=response_id)
        return _ok(incoming, response, cost)
    chunks = gemini_wire.stream_chunks(plan, response_id=response_id)
    if incoming.query("alt") == "sse":
        return Exchange(
            status=200,
            headers=sse_headers(incoming.request_id),
            frames=sse_frames(chunks, _SSE_END),
            frame_end=_SSE_END,
            cost=cost,
        )
    return Exchange(
        status=200,
        headers=json_headers(_JSON, incoming.request_id),
        frames=array_frames(chunks),
        cost=cost,
    )


def request_facts(route: Route, incoming: Incoming) -> tuple[str | None, bool]:
    """Model and stream flag for the request log; Gemini puts both in the URL."""
    return route.model, route.endpoint == "stream_generate"


def fault(rule: FaultRule, incoming: Incoming) -> Exchange:
    """An injected error in Google's shape; throttling carries RetryInfo and Retry-After."""
    status = rule.status or 500
    headers: list[tuple[bytes, bytes]] = []
    retry_after = rule.retry_after_seconds if status == 429 else rule.retry_after
    if retry_after is not None:
        headers.append((b"retry-after", f"{retry_after:g}".encode()))
    return _error(incoming, gemini_wire.fault_error(status, retry_after), headers)


def rate_limited(decision: Decision, model: str, incoming: Incoming) -> Exchange:
    """A 429 for a request the quotas refused; Google says when to retry in RetryInfo only."""
    return _error(incoming, rate_limit_wire.gemini_refusal(decision, model))


def rate_headers(decision: Decision) -> list[tuple[bytes, bytes]]:
    """Google reports no quota headers."""
    return []
