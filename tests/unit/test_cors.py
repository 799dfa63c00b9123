"""CORS is off unless configured, and then answers only the configured origins
(docs/operations.md#security).

Preflights and simple requests are answered by the middleware in front of every route, so the
app runs here in-process without its lifespan (no Redis needed)."""

from __future__ import annotations

import httpx
import pytest

from anygate.api import create_app
from anygate.config import parse_config

ALLOWED = "https://app.example.com"


def _client(origins: list[str]) -> httpx.AsyncClient:
    app = create_app(parse_config({"server": {"cors_origins": origins}}))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


def _preflight(origin: str) -> dict[str, str]:
    return {
        "origin": origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
    }


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/jobs", "/admin/tenants"])
async def test_a_configured_origin_may_call_and_another_may_not(path: str) -> None:
    async with _client([ALLOWED]) as client:
        allowed = await client.options(path, headers=_preflight(ALLOWED))
        refused = await client.options(path, headers=_preflight("https://evil.example"))
        simple = await client.get("/healthz", headers={"origin": ALLOWED})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    assert simple.headers["access-control-allow-origin"] == ALLOWED
    assert "x-request-id" in simple.headers["access-control-expose-headers"]


async def test_without_configured_origins_no_cors_header_is_ever_sent() -> None:
    async with _client([]) as client:
        preflight = await client.options("/v1/jobs", headers=_preflight(ALLOWED))
        simple = await client.get("/healthz", headers={"origin": ALLOWED})
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in simple.headers
    assert preflight.status_code in {404, 405}
