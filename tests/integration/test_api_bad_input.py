"""Bad input answers 400/401/404/405/413 in OpenAI's error shape, naming the field; nothing
already accepted is lost (docs/api.md#conventions, docs/api.md#bad-input-and-request-limits)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.configs import TENANT_KEYS, config_tree
from tests.support.stack import Stack

BODY_LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def api_only(
    tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis
) -> Iterator[Stack]:
    """An API process and no worker: every accepted job stays queued, so none can be lost unseen."""
    tree = config_tree(
        redis_server.url, f"t{secrets.token_hex(5)}", server={"max_body_bytes": BODY_LIMIT}
    )
    stack = Stack(Path(tmp_path_factory.mktemp("api")), tree)
    stack.start_api()
    yield stack
    stack.stop()


@pytest.fixture
async def client(api_only: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with api_only.client() as c:
        yield c


def chat(**body: Any) -> dict[str, Any]:
    return {
        "endpoint": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], **body},
    }


def assert_openai_error(
    response: httpx.Response, status: int, param: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if param is not None:
        assert error["param"] == param
    return error


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    error = assert_openai_error(await client.post("/v1/jobs", content=b'{"endpoint": '), 400)
    assert "JSON" in error["message"]


async def test_json_that_is_not_an_object_is_400(client: httpx.AsyncClient) -> None:
    assert_openai_error(await client.post("/v1/jobs", json=[1, 2]), 400)


async def test_empty_body_is_400(client: httpx.AsyncClient) -> None:
    assert_openai_error(await client.post("/v1/jobs", content=b""), 400)


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"body": {}}, "endpoint"),
        ({"endpoint": "/v1/images/generations", "body": {}}, "endpoint"),
        ({"endpoint": "/v1/chat/completions"}, "body"),
        (
            {"endpoint": "/v1/chat/completions", "body": {"messages": [{"role": "user"}]}},
            "body.model",
        ),
        ({"endpoint": "/v1/chat/completions", "body": {"model": "gpt-4o-mini"}}, "body.messages"),
        (
            {"endpoint": "/v1/chat/completions", "body": {"model": "gpt-4o-mini", "messages": []}},
            "body.messages",
        ),
        (
            {
                "endpoint": "/v1/chat/completions",
                "body": {"model": "gpt-4o-mini", "messages": [{"role": "robot"}]},
            },
            "body.messages[0].role",
        ),
        ({"endpoint": "/v1/chat/completions", "body": {"model": 5, "messages": []}}, "body.model"),
        ({"endpoint": "/v1/embeddings", "body": {"model": "text-embedding-3-small"}}, "body.input"),
        ({**chat(), "priority": "urgent"}, "priority"),
        ({**chat(), "metadata": {"k": 1}}, "metadata.k"),
        ({**chat(), "webhook_url": "ftp://x"}, "webhook_url"),
        ({**chat(), "surprise": True}, "surprise"),
        ({**chat(), "deadline": 1000}, "deadline"),
        ({**chat(stream="yes")}, "body.stream"),
    ],
)
async def test_invalid_fields_are_400_naming_the_field(
    client: httpx.AsyncClient, payload: dict[str, Any], param: str
) -> None:
    assert_openai_error(await client.post("/v1/jobs", json=payload), 400, param)


async def test_unknown_model_is_404_model_not_found(client: httpx.AsyncClient) -> None:
    payload = chat()
    payload["body"]["model"] = "gpt-imaginary"
    error = assert_openai_error(await client.post("/v1/jobs", json=payload), 404, "model")
    assert error["code"] == "model_not_found"
    assert "gpt-imaginary" in error["message"]


async def test_model_of_the_wrong_kind_is_400(client: httpx.AsyncClient) -> None:
    payload = {"endpoint": "/v1/embeddings", "body": {"model": "gpt-4o-mini", "input": "x"}}
    assert_openai_error(await client.post("/v1/jobs", json=payload), 400, "model")


async def test_oversize_body_is_413(client: httpx.AsyncClient) -> None:
    payload = chat()
    payload["body"]["messages"][0]["content"] = "x" * (BODY_LIMIT + 1)
    assert_openai_error(await client.post("/v1/jobs", json=payload), 413)


async def test_oversize_chunked_body_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 8192

    assert_openai_error(await client.post("/v1/jobs", content=chunks()), 413)


async def test_unknown_url_is_404_and_wrong_method_405(client: httpx.AsyncClient) -> None:
    assert_openai_error(await client.get("/v1/nothing-here"), 404)
    assert_openai_error(await client.delete("/v1/jobs"), 405)


async def test_missing_or_wrong_key_is_401(api_only: Stack) -> None:
    async with httpx.AsyncClient(base_url=api_only.url) as anonymous:
        error = assert_openai_error(await anonymous.post("/v1/jobs", json=chat()), 401)
        assert error["code"] == "missing_api_key"
        wrong = {"authorization": "Bearer sk-wrong"}
        error = assert_openai_error(await anonymous.get("/v1/jobs", headers=wrong), 401)
        assert error["code"] == "invalid_api_key"
        assert "sk-wrong" not in error["message"]


@pytest.mark.parametrize(
    ("params", "param"),
    [({"status": "bogus"}, "status"), ({"limit": "0"}, "limit"), ({"limit": "x"}, "limit")],
)
async def test_bad_list_parameters_are_400(
    client: httpx.AsyncClient, params: dict[str, str], param: str
) -> None:
    assert_openai_error(await client.get("/v1/jobs", params=params), 400, param)


@pytest.mark.parametrize("wait", ["abc", "-1", "61", "nan"])
async def test_bad_wait_is_400(client: httpx.AsyncClient, wait: str) -> None:
    job = (await client.post("/v1/jobs", json=chat())).json()
    assert_openai_error(
        await client.get(f"/v1/jobs/{job['id']}", params={"wait": wait}), 400, "wait"
    )


async def test_bad_last_event_id_is_400(client: httpx.AsyncClient) -> None:
    job = (await client.post("/v1/jobs", json=chat())).json()
    response = await client.get(f"/v1/jobs/{job['id']}/events", headers={"last-event-id": "x-y"})
    assert_openai_error(response, 400, "Last-Event-ID")


async def test_unknown_job_is_404(client: httpx.AsyncClient) -> None:
    error = assert_openai_error(await client.get("/v1/jobs/job_doesnotexist"), 404)
    assert error["code"] == "job_not_found"


async def test_bad_requests_lose_nothing_already_accepted(api_only: Stack) -> None:
    async with api_only.client("globex") as client:
        accepted = [(await client.post("/v1/jobs", json=chat())).json()["id"] for _ in range(5)]
        for _ in range(20):
            await client.post("/v1/jobs", content=b"{broken")
            await client.post("/v1/jobs", json={"endpoint": "/v1/chat/completions", "body": {}})
        listed = (await client.get("/v1/jobs", params={"status": "queued", "limit": 100})).json()
    assert {j["id"] for j in listed["data"]} == set(accepted)


async def test_error_bodies_never_echo_the_api_key(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/jobs", content=b"{")
    assert TENANT_KEYS["acme"] not in response.text
