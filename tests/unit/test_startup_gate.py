"""Until its start-up is done (Redis reached, tenants seeded, subscriptions confirmed), an API
process is alive but not ready, and answers every request 503 with Retry-After in the shape
of the surface asked. The app runs here without its lifespan: start-up never completes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from anygate.api import create_app
from anygate.config import parse_config


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(parse_config({}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        yield client


async def test_alive_but_not_ready(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.headers["retry-after"] == "1"
    assert ready.json()["status"] == "starting"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/jobs"),
        ("POST", "/v1/chat/completions"),
        ("GET", "/v1/models"),
        ("GET", "/admin/tenants"),
    ],
)
async def test_requests_get_503_with_retry_after_in_openais_shape(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    answer = await client.request(method, path, json={})
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"
    assert answer.json()["error"]["code"] == "service_unavailable"


async def test_the_gemini_surface_answers_in_googles_shape(client: httpx.AsyncClient) -> None:
    answer = await client.post("/v1beta/models/gemini-2.5-flash:generateContent", json={})
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"
    assert answer.json()["error"]["status"] == "UNAVAILABLE"
