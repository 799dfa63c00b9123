"""Vertex AI's Gemini endpoints and Google's OAuth token endpoint for service accounts.

``POST /token`` takes the JWT-bearer grant a service account signs (``grant_type=
urn:ietf:params:oauth:grant-type:jwt-bearer``, ``assertion=<JWT>``) and answers an access token.
The mock checks the JWT's shape and claims (RS256, ``iss``, ``aud``, ``scope``, ``iat``,
``exp``), not its signature: it holds no public keys. Its tokens are self-checking (an expiry
and an HMAC under a per-process secret), so the Vertex paths accept exactly the tokens this
process issued and still valid, with no state shared between requests.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import time
from typing import Any
from urllib.parse import parse_qs

import orjson

from anygate.ops.mock_provider import gemini_http, gemini_wire, openai_http
from anygate.ops.mock_provider.exchange import Exchange, Incoming, InvalidJsonError, json_exchange
from anygate.ops.mock_provider.routing import Route
from anygate.ops.mock_provider.settings import MockSettings

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_LIFETIME_S = 3599
_SECRET = os.urandom(32)
_TOKEN_PREFIX = "ya29.mock."  # noqa: S105 - a prefix, not a token
_JSON = b"application/json; charset=utf-8"


def issue_token(now: float, lifetime_s: int = TOKEN_LIFETIME_S) -> str:
    expiry = str(int(now) + lifetime_s)
    mac = hmac.new(_SECRET, expiry.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{_TOKEN_PREFIX}{expiry}.{mac}"


def token_valid(token: str, now: float) -> bool:
    if not token.startswith(_TOKEN_PREFIX):
        return False
    expiry, _, mac = token[len(_TOKEN_PREFIX) :].partition(".")
    expected = hmac.new(_SECRET, expiry.encode(), hashlib.sha256).hexdigest()[:32]
    return expiry.isdigit() and hmac.compare_digest(mac, expected) and int(expiry) > now


def api_key(incoming: Incoming) -> str | None:
    """The bearer token, for the log's fingerprint and the rate limits' account."""
    return openai_http.api_key(incoming)


def handle(route: Route, incoming: Incoming, settings: MockSettings) -> Exchange:
    if route.endpoint == "token":
        return _token(incoming)
    if route.endpoint == "not_found":
        message = f"Method not found: {incoming.method} {incoming.path}"
        return _google_error(incoming, gemini_wire.error_body(404, message))
    if route.endpoint == "method_not_allowed":
        message = f"Method not allowed: {incoming.method} {incoming.path}"
        return _google_error(incoming, gemini_wire.error_body(405, message))
    token = openai_http.api_key(incoming)
    if token is None or not token_valid(token, time.time()):
        return _google_error(incoming, _unauthenticated())
    try:
        body = incoming.json()
    except InvalidJsonError:
        message = "Invalid JSON payload received. Unexpected token."
        return _google_error(incoming, gemini_wire.error_body(400, message))
    return gemini_http.answer(route, incoming, body, settings)


def _unauthenticated() -> dict[str, Any]:
    return {
        "error": {
            "code": 401,
            "message": "Request had invalid authentication credentials. Expected OAuth 2 access "
            "token, login cookie or other valid authentication credential.",
            "status": "UNAUTHENTICATED",
        }
    }


def _google_error(incoming: Incoming, body: dict[str, Any]) -> Exchange:
    return json_exchange(_JSON, incoming.request_id, int(body["error"]["code"]), body)


def _oauth_error(incoming: Incoming, error: str, description: str) -> Exchange:
    body = {"error": error, "error_description": description}
    return json_exchange(_JSON, incoming.request_id, 400, body)


def _token(incoming: Incoming) -> Exchange:
    form = parse_qs(incoming.raw_body.decode("latin-1"))
    grant = (form.get("grant_type") or [""])[-1]
    if grant != JWT_BEARER:
        return _oauth_error(incoming, "unsupported_grant_type", f"Invalid grant_type: {grant}")
    problem = _jwt_problem((form.get("assertion") or [""])[-1], time.time())
    if problem is not None:
        return _oauth_error(incoming, "invalid_grant", problem)
    answer = {
        "access_token": issue_token(time.time()),
        "expires_in": TOKEN_LIFETIME_S,
        "token_type": "Bearer",
    }
    exchange = json_exchange(_JSON, incoming.request_id, 200, answer)
    exchange.plannable = False  # no latency or faults on the token endpoint
    return exchange


def _segment(raw: str) -> Any:
    return orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))


def _jwt_problem(assertion: str, now: float) -> str | None:
    """What is wrong with a service account's assertion, in Google's words where it has some."""
    parts = assertion.split(".")
    if len(parts) != 3:
        return "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe"
    try:
        header, claims = _segment(parts[0]), _segment(parts[1])
    except (binascii.Error, ValueError):
        return "Invalid JWT: not base64url-encoded JSON"
    if not isinstance(header, dict) or header.get("alg") != "RS256":
        return "Invalid JWT: the algorithm must be RS256"
    if not isinstance(claims, dict):
        return "Invalid JWT: the claims are not an object"
    missing = [c for c in ("iss", "aud", "scope", "iat", "exp") if c not in claims]
    if missing:
        return f"Invalid JWT: missing claim(s) {', '.join(missing)}"
    iat, exp = claims["iat"], claims["exp"]
    if not isinstance(iat, int) or not isinstance(exp, int) or not iat - 300 <= now <= exp:
        return "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe"
    return None
