"""Azure OpenAI's endpoints: its URLs, ``api-version`` and ``api-key`` / Entra ID auth, and its
additions to OpenAI's bodies (content-filter results), around the OpenAI answers.

Azure names the model in the path (the deployment), needs ``api-version`` on every call
(without one: 404 "Resource not found"), and takes either ``api-key: <key>`` or
``Authorization: Bearer <Entra ID token>``. A prompt containing ``[content_filter]`` is refused
the way Azure's content filter refuses one: a 400 with code ``content_filter``.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from anygate.ops.mock_provider import openai_http
from anygate.ops.mock_provider.exchange import Exchange, Incoming, InvalidJsonError, json_exchange
from anygate.ops.mock_provider.routing import Route
from anygate.ops.mock_provider.settings import MockSettings

_JSON = b"application/json"
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
FILTER_TRIGGER = "[content_filter]"
_NOT_FILTERED = {
    sev: {"filtered": False, "severity": "safe"}
    for sev in ("hate", "self_harm", "sexual", "violence")
}
_DENIED = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
    "valid key for an active subscription and use a correct regional API endpoint for your "
    "resource."
)


def _error(incoming: Incoming, http: int, code: str, message: str, **extra: Any) -> Exchange:
    body = {"error": {"code": code, "message": message, **extra}}
    return json_exchange(_JSON, incoming.request_id, http, body)


def api_key(incoming: Incoming) -> str | None:
    """The credential presented (an ``api-key`` or a bearer token), for the log's fingerprint
    and the rate limits' account."""
    if incoming.azure_api_key is not None:
        return incoming.azure_api_key.decode("latin-1").strip() or None
    return openai_http.api_key(incoming)


def _auth_failure(incoming: Incoming, settings: MockSettings) -> Exchange | None:
    if incoming.azure_api_key is not None:
        key = incoming.azure_api_key.decode("latin-1").strip()
        if key and (settings.api_key is None or key == settings.api_key):
            return None
        return _error(incoming, 401, "401", _DENIED)
    token = openai_http.api_key(incoming)
    if token is not None and (settings.bearer_token is None or token == settings.bearer_token):
        return None
    if token is not None:
        return _error(incoming, 401, "InvalidAuthenticationToken", "The access token is invalid.")
    return _error(incoming, 401, "401", _DENIED)


def handle(route: Route, incoming: Incoming, settings: MockSettings) -> Exchange:
    if route.endpoint == "not_found":
        return _error(incoming, 404, "404", "Resource not found")
    if route.endpoint == "method_not_allowed":
        return _error(incoming, 405, "405", f"Method {incoming.method} not allowed")
    version = incoming.query("api-version")
    if version is None:
        return _error(incoming, 404, "404", "Resource not found")
    if not _API_VERSION.match(version):
        return _error(incoming, 400, "BadRequest", "API version not supported")
    failure = _auth_failure(incoming, settings)
    if failure is not None:
        return failure
    try:
        body = incoming.json()
    except InvalidJsonError:
        return _error(incoming, 400, "BadRequest", "Failed to parse the request body as JSON.")
    if isinstance(body, dict):
        body = {**body, "model": route.model}  # the deployment's model, whatever the body says
        if route.endpoint == "chat" and FILTER_TRIGGER in orjson.dumps(body).decode():
            return _filtered(incoming)
    return _with_filter_results(openai_http.answer(route.endpoint, incoming, body, settings))


def _filtered(incoming: Incoming) -> Exchange:
    results = {**_NOT_FILTERED, "violence": {"filtered": True, "severity": "high"}}
    return _error(
        incoming,
        400,
        "content_filter",
        "The response was filtered due to the prompt triggering Azure OpenAI's content "
        "management policy.",
        param="prompt",
        status=400,
        innererror={"code": "ResponsibleAIPolicyViolation", "content_filter_result": results},
    )


def _with_filter_results(exchange: Exchange) -> Exchange:
    """Azure's chat answers carry ``prompt_filter_results``; a stream sends them first, in a
    chunk with no choices and an empty id."""
    if exchange.status != 200:
        return exchange
    prompt = [{"prompt_index": 0, "content_filter_results": _NOT_FILTERED}]
    if exchange.frames is not None:
        head = {"choices": [], "created": 0, "id": "", "model": "", "object": ""}
        frame = b"data: " + orjson.dumps({**head, "prompt_filter_results": prompt})
        exchange.frames.insert(0, frame + exchange.frame_end)
        return exchange
    body = orjson.loads(exchange.body)
    if body.get("object") == "chat.completion":
        body["prompt_filter_results"] = prompt
        for choice in body.get("choices") or ():
            choice["content_filter_results"] = _NOT_FILTERED
        exchange.body = orjson.dumps(body)
    return exchange


def request_facts(route: Route, incoming: Incoming) -> tuple[str | None, bool]:
    """The deployment is the model; the stream flag is the body's."""
    body = incoming.parsed_or_none()
    return route.model, isinstance(body, dict) and body.get("stream") is True
