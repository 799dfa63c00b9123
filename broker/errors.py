"""Every error the gateway raises on purpose, each carrying its OpenAI ``type``/``code`` and status.

Handlers map these once, at the edge (``anygate.api.errors``); nothing else formats errors. The
tree lives here, in the lowest layer that raises any of them (``broker``), so the core, the API
and the workers all use the one hierarchy (docs/architecture.md, "Layers").

    AnygateError
    ├── InvalidRequestError          400 invalid_request_error
    │   └── PayloadTooLargeError     413
    ├── AuthenticationError          401
    ├── PermissionDeniedError        403
    ├── NotFoundError                404
    │   └── ModelNotFoundError       404 model_not_found
    ├── ConflictError                409
    │   └── IdempotencyConflictError 409 idempotency_key_reused: same key, another body
    ├── RateLimitedError             429 (Retry-After)
    │   ├── QueueFullError           429 queue_full: the tenant's max queued jobs
    │   └── InsufficientQuotaError   429 insufficient_quota: a daily/monthly budget is spent
    ├── ServiceUnavailableError      503 (Retry-After)
    │   └── DeploymentPausedError    503 circuit_open / deployment_cooling_down: nothing of the
    │                                route can serve a synchronous caller soon
    ├── SyncCallTimeoutError         504 gateway_timeout: a synchronous call waited its limit out
    └── UpstreamError                how a provider call failed (the worker decides what follows)
        ├── UpstreamRateLimitedError    retry after the provider's Retry-After, attempt refunded
        ├── UpstreamTransientError      5xx, timeouts, dropped connections: retry with backoff
        └── UpstreamRejectedError       the provider refused the request (4xx): fail at once

A job that fails stores its error as a JSON object in its record and its terminal event (the
*job error value*). A worker writes it with ``to_job_error()``; the API reads it back with
``job_error()``, below, into the error its synchronous caller is answered with. The Lua scripts
write three values of their own (``cancelled``, ``expired``, ``max_attempts_exceeded``), which
``job_error`` reads too.

Messages never contain secrets: provider keys are not in scope where errors are built, and
upstream bodies are reduced to the provider's own ``message`` field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar


class AnygateError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code
        self.retry_after = retry_after
        self.headers: dict[str, str] = {}
        """Extra response headers (``x-anygate-job-id``, ``x-should-retry``), set at the edge."""

    def to_openai(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def to_job_error(self) -> dict[str, Any]:
        """The job error value a worker stores when this error ends a job (read back by
        ``job_error``); subclasses add what their caller needs."""
        return {"message": self.message, "type": self.type, "code": self.code}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, param={self.param!r}, code={self.code!r})"


class InvalidRequestError(AnygateError):
    status = 400
    type = "invalid_request_error"


class PayloadTooLargeError(InvalidRequestError):
    status = 413
    default_code = "payload_too_large"


class AuthenticationError(AnygateError):
    status = 401
    type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(AnygateError):
    status = 403
    type = "permission_error"


class NotFoundError(AnygateError):
    status = 404
    type = "invalid_request_error"
    default_code = "not_found"


class ModelNotFoundError(NotFoundError):
    default_code = "model_not_found"


class ConflictError(AnygateError):
    status = 409
    type = "invalid_request_error"
    default_code = "conflict"


class IdempotencyConflictError(ConflictError):
    """The Idempotency-Key was used before, for the tenant, with a different request body;
    ``job_id`` is the job it names."""

    default_code = "idempotency_key_reused"

    def __init__(self, job_id: str) -> None:
        super().__init__(
            f"Idempotency-Key was already used with a different request body (job '{job_id}').",
            param="Idempotency-Key",
        )
        self.job_id = job_id


class RateLimitedError(AnygateError):
    status = 429
    type = "rate_limit_error"


class QueueFullError(RateLimitedError):
    default_code = "queue_full"


class InsufficientQuotaError(RateLimitedError):
    type = "insufficient_quota"
    default_code = "insufficient_quota"


class ServiceUnavailableError(AnygateError):
    status = 503
    type = "server_error"
    default_code = "service_unavailable"


class DeploymentPausedError(ServiceUnavailableError):
    """No deployment of a synchronous job's route can serve for a while (an open breaker, a
    provider's cool-down): the caller is told at once to come back after ``retry_after``
    seconds, and not told that the gateway already retried (``x-should-retry`` stays off)."""

    CODES: ClassVar[frozenset[str]] = frozenset({"circuit_open", "deployment_cooling_down"})

    def to_job_error(self) -> dict[str, Any]:
        return {**super().to_job_error(), "retry_after": max(1, math.ceil(self.retry_after or 1))}


class SyncCallTimeoutError(AnygateError):
    status = 504
    type = "timeout_error"
    default_code = "gateway_timeout"


class UpstreamError(AnygateError):
    """A provider call failed; ``upstream_status`` is the provider's HTTP status, if any."""

    status = 502
    type = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after, code=code)
        self.upstream_status = upstream_status

    def to_job_error(self) -> dict[str, Any]:
        return {**super().to_job_error(), "upstream_status": self.upstream_status}

    def to_attempt_error(self) -> dict[str, Any]:
        """What the job's history records of a failed attempt."""
        return {"code": self.code, "message": self.message, "status": self.upstream_status}


class UpstreamRateLimitedError(UpstreamError):
    status = 429
    type = "rate_limit_error"


class UpstreamTransientError(UpstreamError):
    pass


class UpstreamRejectedError(UpstreamError):
    status = 400
    type = "invalid_request_error"


def job_error(outcome: str, error: Mapping[str, Any]) -> AnygateError:
    """The error a synchronous caller is answered with, from a job that ended ``outcome``
    (``failed``, ``expired``, ``cancelled``) and its job error value.

    Whatever a worker stores with ``to_job_error`` reads back as an error that stores the same
    value again, except the gateway's own failures (``type`` ``server_error``: an unreadable
    client key, a job whose workers kept dying), which a caller sees as a 502."""
    message = str(error.get("message") or f"the job ended {outcome}")
    code = error.get("code")
    if code in DeploymentPausedError.CODES:
        retry_after = error.get("retry_after")
        return DeploymentPausedError(
            message, code=code, retry_after=retry_after if isinstance(retry_after, int) else 1
        )
    if outcome == "expired":
        return ServiceUnavailableError(message, code="deadline_exceeded", retry_after=1)
    if outcome == "cancelled":
        return ServiceUnavailableError(message, code="cancelled", retry_after=1)
    kind = error.get("type")
    upstream_status = error.get("upstream_status")
    if kind == "invalid_request_error":
        if "upstream_status" in error:  # the provider refused it (UpstreamRejectedError)
            return UpstreamRejectedError(message, code=code, upstream_status=upstream_status)
        return InvalidRequestError(message, code=code)
    if kind == "rate_limit_error":
        return UpstreamRateLimitedError(
            message, code=code, upstream_status=upstream_status, retry_after=1
        )
    return UpstreamError(message, code=code, upstream_status=upstream_status)
