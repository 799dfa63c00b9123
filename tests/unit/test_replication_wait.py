"""``ReplicationWaitMiddleware``: a successful answer leaves only after the durability barrier
returned, and one the barrier cannot confirm becomes a 503; answers that acknowledge nothing
stored (health, metrics, errors) never wait. The barrier's own behaviour against real
replicas: tests/integration/test_redis_sentinel.py."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

from anygate.api.replication_wait import ReplicationWaitMiddleware
from anygate.broker.durability import ReplicasBehindError


class Barrier:
    """Counts calls; raises ``error`` when set (what ``DurabilityBarrier`` raises)."""

    def __init__(self) -> None:
        self.calls = 0
        self.error: Exception | None = None

    async def __call__(self) -> None:
        self.calls += 1
        if self.error is not None:
            raise self.error


async def accepted(_request: Request) -> JSONResponse:
    return JSONResponse({"id": "job_1"}, status_code=202)


async def missing(_request: Request) -> JSONResponse:
    return JSONResponse({"error": "no such job"}, status_code=404)


async def stream(_request: Request) -> StreamingResponse:
    async def body() -> object:
        yield b"data: 1\n\n"
        yield b"data: 2\n\n"

    return StreamingResponse(body(), media_type="text/event-stream")  # type: ignore[arg-type]


async def health(_request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


@pytest.fixture
def barrier() -> Barrier:
    return Barrier()


@pytest.fixture
def client(barrier: Barrier) -> httpx.AsyncClient:
    app = Starlette(
        routes=[
            Route("/v1/jobs", accepted, methods=["POST"]),
            Route("/v1/jobs/x", missing),
            Route("/v1/stream", stream),
            Route("/healthz", health),
        ],
        middleware=[Middleware(ReplicationWaitMiddleware)],
    )
    app.state.gateway = SimpleNamespace(barrier=barrier)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


async def test_an_acknowledgement_waits_for_the_barrier(
    client: httpx.AsyncClient, barrier: Barrier
) -> None:
    response = await client.post("/v1/jobs")
    assert response.status_code == 202
    assert barrier.calls == 1
    streamed = await client.get("/v1/stream")
    assert streamed.text == "data: 1\n\ndata: 2\n\n"
    assert barrier.calls == 2


@pytest.mark.parametrize("error", [ReplicasBehindError("0 of 1"), RedisError("gone"), OSError()])
async def test_an_unconfirmed_acknowledgement_is_a_503(
    client: httpx.AsyncClient, barrier: Barrier, error: Exception
) -> None:
    barrier.error = error
    response = await client.post("/v1/jobs")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    body = response.json()
    assert body["error"]["code"] == "service_unavailable"
    assert "replicas" in body["error"]["message"]
    assert "job_1" not in response.text, "nothing of the withheld answer leaks"
    streamed = await client.get("/v1/stream")
    assert streamed.status_code == 503
    assert "data:" not in streamed.text


async def test_errors_and_health_do_not_wait(client: httpx.AsyncClient, barrier: Barrier) -> None:
    barrier.error = ReplicasBehindError("0 of 1")
    assert (await client.get("/v1/jobs/x")).status_code == 404
    assert (await client.get("/healthz")).status_code == 200
    assert barrier.calls == 0
