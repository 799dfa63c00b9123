"""How a job that ended badly answers a synchronous caller (docs/api.md#error-codes statuses)."""

from __future__ import annotations

import pytest

from anygate.broker.errors import (
    InvalidRequestError,
    ServiceUnavailableError,
    UpstreamError,
    UpstreamRateLimitedError,
    job_error,
)


@pytest.mark.parametrize(
    ("kind", "error", "expected", "status"),
    [
        ("failed", {"type": "invalid_request_error", "message": "bad n"}, InvalidRequestError, 400),
        ("failed", {"type": "rate_limit_error", "message": "slow"}, UpstreamRateLimitedError, 429),
        ("failed", {"type": "upstream_error", "upstream_status": 500}, UpstreamError, 502),
        ("failed", {"type": "server_error", "code": "max_attempts_exceeded"}, UpstreamError, 502),
        ("expired", {}, ServiceUnavailableError, 503),
        ("cancelled", {}, ServiceUnavailableError, 503),
    ],
)
def test_failed_job_maps_to_a_fitting_status(
    kind: str, error: dict[str, object], expected: type[Exception], status: int
) -> None:
    exc = job_error(kind, error)
    assert isinstance(exc, expected)
    assert exc.status == status


def test_the_providers_message_is_kept() -> None:
    assert (
        job_error("failed", {"type": "invalid_request_error", "message": "bad n"}).message
        == "bad n"
    )
