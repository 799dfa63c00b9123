"""The job error value: what a worker stores when an error ends a job (``to_job_error``), and
what the API answers a synchronous caller with when it reads it back (``job_error``).

The stored JSON is read by API processes of another version during a rolling upgrade and
returned by ``GET /v1/jobs/{id}``: its bytes are pinned here, field order included.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from anygate.broker.errors import (
    AnygateError,
    ConflictError,
    DeploymentPausedError,
    IdempotencyConflictError,
    InvalidRequestError,
    ModelNotFoundError,
    ServiceUnavailableError,
    UpstreamError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamTransientError,
    job_error,
)
from anygate.workers.pause_policy import Pause, paused_error

WRITTEN_BY_WORKERS: list[tuple[AnygateError, bytes]] = [
    (
        ModelNotFoundError("model 'm' has no deployment for step 1 in pool 'p'"),
        b"{\"message\":\"model 'm' has no deployment for step 1 in pool 'p'\","
        b'"type":"invalid_request_error","code":"model_not_found"}',
    ),
    (
        InvalidRequestError("needs 9000 tokens, the window holds 8000", code="request_too_large"),
        b'{"message":"needs 9000 tokens, the window holds 8000",'
        b'"type":"invalid_request_error","code":"request_too_large"}',
    ),
    (
        paused_error(Pause("circuit_open", 12.2), None),
        b'{"message":"the deployment is failing and its circuit breaker is open; no deployment '
        b'of the route can serve for about 13 s: retry after that",'
        b'"type":"server_error","code":"circuit_open","retry_after":13}',
    ),
    (
        paused_error(Pause("deployment_cooling_down", 0.2), None),
        b'{"message":"the deployment asked for a pause (429); no deployment of the route can '
        b'serve for about 1 s: retry after that",'
        b'"type":"server_error","code":"deployment_cooling_down","retry_after":1}',
    ),
    (
        UpstreamRejectedError("bad n", upstream_status=400),
        b'{"message":"bad n","type":"invalid_request_error","code":null,"upstream_status":400}',
    ),
    (
        UpstreamRateLimitedError("slow down", upstream_status=429, code="rate_limit_exceeded"),
        b'{"message":"slow down","type":"rate_limit_error","code":"rate_limit_exceeded",'
        b'"upstream_status":429}',
    ),
    (
        UpstreamTransientError("upstream answered HTTP 503", upstream_status=503),
        b'{"message":"upstream answered HTTP 503","type":"upstream_error","code":null,'
        b'"upstream_status":503}',
    ),
    (
        UpstreamTransientError("timed out", code="upstream_timeout"),
        b'{"message":"timed out","type":"upstream_error","code":"upstream_timeout",'
        b'"upstream_status":null}',
    ),
]


@pytest.mark.parametrize(("error", "stored"), WRITTEN_BY_WORKERS)
def test_a_job_error_is_stored_as_it_always_was(error: AnygateError, stored: bytes) -> None:
    assert orjson.dumps(error.to_job_error()) == stored


@pytest.mark.parametrize(("error", "stored"), WRITTEN_BY_WORKERS)
def test_what_a_worker_stores_reads_back_as_the_same_value(
    error: AnygateError, stored: bytes
) -> None:
    """Decoding what was stored gives an error that would store exactly the same bytes, and
    answers with the status, type and code the stored value names."""
    decoded = job_error("failed", orjson.loads(stored))
    assert orjson.dumps(decoded.to_job_error()) == stored
    assert (decoded.type, decoded.code) == (error.type, error.code)


@pytest.mark.parametrize(
    ("error", "status", "retry_after", "paused"),
    [
        (ModelNotFoundError("gone"), 400, None, False),  # the job's 400, not the API's 404
        (InvalidRequestError("too big", code="request_too_large"), 400, None, False),
        (paused_error(Pause("circuit_open", 12.2), None), 503, 13, True),
        (UpstreamRejectedError("bad n", upstream_status=400), 400, None, False),
        (UpstreamRateLimitedError("slow", upstream_status=429), 429, 1, False),
        (UpstreamTransientError("boom", upstream_status=500), 502, None, False),
    ],
)
def test_a_synchronous_caller_is_answered_as_before(
    error: AnygateError, status: int, retry_after: int | None, *, paused: bool
) -> None:
    decoded = job_error("failed", orjson.loads(orjson.dumps(error.to_job_error())))
    assert decoded.status == status
    assert decoded.retry_after == retry_after
    assert isinstance(decoded, DeploymentPausedError) is paused
    assert decoded.to_openai() == {
        "error": {"message": error.message, "type": decoded.type, "param": None, "code": error.code}
    }


def test_the_gateways_own_failure_reads_as_a_502() -> None:
    """``type: server_error`` (an unreadable client key; a job whose workers kept dying, written
    by ``reclaim-6.lua``) answers 502 ``upstream_error``, with its code and message."""
    stored = AnygateError("cannot open the key", code="client_key_unreadable").to_job_error()
    assert orjson.dumps(stored) == (
        b'{"message":"cannot open the key","type":"server_error","code":"client_key_unreadable"}'
    )
    decoded = job_error("failed", stored)
    assert type(decoded) is UpstreamError
    assert (decoded.status, decoded.type, decoded.code) == (
        502,
        "upstream_error",
        "client_key_unreadable",
    )
    assert decoded.message == "cannot open the key"


@pytest.mark.parametrize(
    ("outcome", "stored", "code"),
    [
        (
            "cancelled",
            {
                "message": "the job was cancelled",
                "type": "cancelled",
                "code": "client_disconnected",
            },
            "cancelled",
        ),
        (
            "expired",
            {
                "message": "the job was not started before its deadline",
                "type": "expired",
                "code": "deadline_exceeded",
            },
            "deadline_exceeded",
        ),
    ],
)
def test_what_the_scripts_store_reads_as_a_503(
    outcome: str, stored: dict[str, Any], code: str
) -> None:
    decoded = job_error(outcome, stored)
    assert type(decoded) is ServiceUnavailableError
    assert (decoded.status, decoded.code, decoded.retry_after) == (503, code, 1)
    assert decoded.message == stored["message"]


def test_a_paused_value_without_a_usable_retry_after_waits_a_second() -> None:
    decoded = job_error(
        "failed",
        {"message": "m", "type": "server_error", "code": "circuit_open", "retry_after": "soon"},
    )
    assert isinstance(decoded, DeploymentPausedError)
    assert decoded.retry_after == 1


def test_an_attempt_records_its_upstream_failure() -> None:
    error = UpstreamTransientError("boom", upstream_status=500, code="server_error")
    assert orjson.dumps(error.to_attempt_error()) == (
        b'{"code":"server_error","message":"boom","status":500}'
    )


def test_a_reused_idempotency_key_answers_409_naming_the_job() -> None:
    exc = IdempotencyConflictError("job_1")
    assert isinstance(exc, ConflictError)
    assert exc.job_id == "job_1"
    assert exc.status == 409
    assert exc.to_openai() == {
        "error": {
            "message": "Idempotency-Key was already used with a different request body "
            "(job 'job_1').",
            "type": "invalid_request_error",
            "param": "Idempotency-Key",
            "code": "idempotency_key_reused",
        }
    }
