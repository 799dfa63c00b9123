"""Every error the gateway raises on purpose, each carrying its OpenAI ``type``/``code`` and status.

Handlers map these once, at the edge (``anygate.api.errors``); nothing else formats errors.

    AnygateError
    ├── InvalidRequestError          400 invalid_request_error
    │   └── PayloadTooLargeError     413
    ├── AuthenticationError          401
    ├── PermissionDeniedError        403
    ├── NotFoundError                404
    │   └── ModelNotFoundError       404 model_not_found
    ├── ConflictError                409
    ├── RateLimitedError             429 (Retry-After)
    │   ├── QueueFullError           429 queue_full: the tenant's max queued jobs
    │   └── InsufficientQuotaError   429 insufficient_quota: a daily/monthly budget is spent
    ├── ServiceUnavailableError      503 (Retry-After)
    └── UpstreamError                how a provider call failed (the worker decides what follows)
        ├── UpstreamRateLimitedError    retry after the provider's Retry-After, attempt refunded
        ├── UpstreamTransientError      5xx, timeouts, dropped connections: retry with backoff
        └── UpstreamRejectedError       the provider refused the request (4xx): fail at once

Messages never contain secrets: provider keys are not in scope where errors are built, and
upstream bodies are reduced to the provider's own ``message`` field.
"""

from __future__ import annotations

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


class UpstreamRateLimitedError(UpstreamError):
    status = 429
    type = "rate_limit_error"


class UpstreamTransientError(UpstreamError):
    pass


class UpstreamRejectedError(UpstreamError):
    status = 400
    type = "invalid_request_error"
