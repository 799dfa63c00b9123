"""The mock's Azure OpenAI and Vertex AI routes, its self-checking access tokens and what its
request log keeps of a query; pure, no server."""

from __future__ import annotations

import base64
import time

import orjson
import pytest

from anygate.ops.mock_provider.request_log import query_for_log
from anygate.ops.mock_provider.routing import Route, resolve
from anygate.ops.mock_provider.vertex_http import _jwt_problem, issue_token, token_valid

VERTEX = "/v1/projects/p/locations/us-central1/publishers/google/models"


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        ("POST", "/openai/deployments/d1/chat/completions", Route("azure", "chat", "d1")),
        ("POST", "/res-a/openai/deployments/d1/embeddings", Route("azure", "embeddings", "d1")),
        (
            "GET",
            "/openai/deployments/d1/chat/completions",
            Route("azure", "method_not_allowed", "d1"),
        ),
        ("POST", "/openai/deployments/d1/completions", Route("azure", "not_found")),
        ("POST", "/a/b/openai/deployments/d1/embeddings", Route("openai", "not_found")),
        (
            "POST",
            f"{VERTEX}/gemini-2.5-flash:generateContent",
            Route("vertex", "generate", "gemini-2.5-flash"),
        ),
        ("POST", f"{VERTEX}/m:streamGenerateContent", Route("vertex", "stream_generate", "m")),
        ("POST", f"{VERTEX}/m:embedContent", Route("vertex", "not_found", "m")),
        (
            "POST",
            "/v1/projects/p/locations/l/models/m:generateContent",
            Route("vertex", "not_found"),
        ),
        ("POST", "/token", Route("vertex", "token")),
        ("GET", "/token", Route("vertex", "method_not_allowed")),
        ("POST", "/v1/chat/completions", Route("openai", "chat")),
    ],
)
def test_routes(method: str, path: str, route: Route) -> None:
    assert resolve(method, path, gemini_credentials=False) == route


def test_tokens_check_themselves() -> None:
    now = time.time()
    token = issue_token(now)
    assert token_valid(token, now)
    assert not token_valid(token, now + 3600), "expired"
    assert not token_valid(token[:-1] + ("0" if token[-1] != "0" else "1"), now), "forged"
    assert not token_valid("ya29.real-google-token", now)


def test_a_jwt_needs_its_claims() -> None:
    def seg(value: object) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")

    now = int(time.time())
    claims = {"iss": "a@b", "aud": "http://x/token", "scope": "s", "iat": now, "exp": now + 3600}
    assert _jwt_problem(f"{seg({'alg': 'RS256'})}.{seg(claims)}.sig", now) is None
    assert "RS256" in (_jwt_problem(f"{seg({'alg': 'none'})}.{seg(claims)}.sig", now) or "")
    del claims["scope"]
    assert "scope" in (_jwt_problem(f"{seg({'alg': 'RS256'})}.{seg(claims)}.sig", now) or "")


def test_the_log_keeps_the_query_but_not_a_key() -> None:
    assert query_for_log(b"api-version=2024-10-21") == "api-version=2024-10-21"
    assert query_for_log(b"alt=sse&key=secret") == "alt=sse"
