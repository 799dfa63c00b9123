"""An unexpected error is a 500 in OpenAI's shape that reveals nothing internal and still
carries the request id, so a user's report can be matched to our log line."""

from __future__ import annotations

import httpx

from anygate.api import create_app
from anygate.config import parse_config


async def test_a_500_says_nothing_internal_and_carries_the_request_id() -> None:
    # Without its lifespan, and with a gateway that is not one, /readyz fails unplanned.
    app = create_app(parse_config({}))
    app.state.gateway = object()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        answer = await client.get("/readyz", headers={"x-request-id": "trace-500"})
    assert answer.status_code == 500
    assert answer.headers["x-request-id"] == "trace-500"
    error = answer.json()["error"]
    assert error["type"] == "server_error"
    assert "gateway" not in error["message"]
    assert "Traceback" not in answer.text
