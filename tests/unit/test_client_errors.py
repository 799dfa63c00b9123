"""Error answers become typed errors carrying the gateway's OpenAI-shaped error, its request id and
Retry-After; typed results read the gateway's objects leniently."""

from __future__ import annotations

import httpx
import pytest

from anygate.client import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    Batch,
    BatchResult,
    Client,
    ConflictError,
    InternalServerError,
    Job,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    UnexpectedResponseError,
)
from anygate.client._errors import status_error
from tests.support.client_kinds import KINDS, open_client


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (413, PayloadTooLargeError),
        (429, RateLimitError),
        (503, ServiceUnavailableError),
        (500, InternalServerError),
        (502, InternalServerError),
        (418, APIStatusError),
    ],
)
def test_each_status_has_its_class(status: int, kind: type[APIStatusError]) -> None:
    error = status_error(status, {}, None, None)
    assert type(error) is kind
    assert error.status == error.status_code == status
    assert error.message == f"HTTP {status}"


def test_the_error_body_is_kept_whole() -> None:
    body = {
        "error": {
            "message": "body.messages: field required",
            "type": "invalid_request_error",
            "param": "body.messages",
            "code": None,
        }
    }
    error = status_error(400, body, "req_123", None)
    assert (error.message, error.type, error.param, error.code) == (
        "body.messages: field required",
        "invalid_request_error",
        "body.messages",
        None,
    )
    assert error.request_id == "req_123"
    assert error.body == body
    assert str(error).startswith("400 invalid_request_error: body.messages: field required")
    assert str(error).endswith("(param: body.messages)")


def test_a_body_that_is_not_the_error_shape_still_makes_an_error() -> None:
    for body in (None, "Bad Gateway", [1, 2], {"error": "flat string"}):
        error = status_error(502, body, None, 2.0)
        assert error.message == "HTTP 502"
        assert error.retry_after == 2.0


@pytest.mark.parametrize("kind", KINDS)
async def test_a_client_raises_the_typed_error_with_request_id_and_retry_after(kind: str) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/gone"):
            return httpx.Response(
                404,
                json={
                    "error": {
                        "message": "No job",
                        "type": "invalid_request_error",
                        "param": "id",
                        "code": "job_not_found",
                    }
                },
                headers={"x-request-id": "req_abc"},
            )
        return httpx.Response(200, text="<html>a proxy page</html>")

    transport = httpx.MockTransport(handle)
    async with open_client(kind, "http://gw", "k", transport=transport, max_retries=0) as ag:
        with pytest.raises(NotFoundError) as raised:
            await ag.get("gone")
        with pytest.raises(UnexpectedResponseError, match="not a JSON object"):
            await ag.get("fine")
    assert raised.value.request_id == "req_abc"
    assert raised.value.code == "job_not_found"
    assert raised.value.param == "id"


def test_settings_name_the_missing_url_or_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANYGATE_URL", raising=False)
    monkeypatch.delenv("ANYGATE_KEY", raising=False)
    with pytest.raises(ValueError, match=r"base_url.*ANYGATE_URL"):
        Client()
    with pytest.raises(ValueError, match=r"api_key.*ANYGATE_KEY"):
        Client("http://gw")
    with pytest.raises(ValueError, match="base_url: expected http"):
        Client("gw:8080", "k")
    monkeypatch.setenv("ANYGATE_URL", "http://gw/")
    monkeypatch.setenv("ANYGATE_KEY", "k")
    with Client() as client:
        assert client.base_url == "http://gw"


def test_a_job_reads_what_the_gateway_sends() -> None:
    raw = {
        "id": "job_1",
        "object": "job",
        "status": "succeeded",
        "endpoint": "/v1/chat/completions",
        "created_at": 1.5,
        "attempts": 2,
        "result": {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}}]},
        "metadata": {"a": "b"},
        "something_new": True,
    }
    job = Job.from_api(raw)
    assert (job.done, job.text, job.attempts, job.metadata) == (True, "Hi", 2, {"a": "b"})
    assert job.raw["something_new"] is True
    assert Job.from_api({**raw, "status": "failed"}).text is None
    assert Job.from_api({"id": "j", "status": "running", "attempts": None}).attempts == 0


def test_a_batch_and_its_result_lines() -> None:
    batch = Batch.from_api(
        {
            "id": "batch_1",
            "status": "in_progress",
            "request_counts": {"total": 10, "completed": 4, "failed": 1},
        }
    )
    assert (batch.done, batch.request_counts.finished) == (False, 5)
    good = BatchResult.from_line(
        {"custom_id": "a", "response": {"status_code": 200, "body": {"x": 1}}, "error": None}
    )
    refused = BatchResult.from_line(
        {
            "custom_id": "b",
            "response": {"status_code": 400, "body": {"error": {"message": "bad"}}},
            "error": None,
        }
    )
    never = BatchResult.from_line(
        {"custom_id": "c", "response": None, "error": {"code": "batch_expired", "message": "x"}}
    )
    assert (good.ok, good.status_code, good.body) == (True, 200, {"x": 1})
    assert (refused.ok, refused.error) == (False, {"message": "bad"})
    assert (never.ok, never.status_code, never.error) == (
        False,
        None,
        {"code": "batch_expired", "message": "x"},
    )
