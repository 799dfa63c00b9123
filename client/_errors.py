"""Errors the client raises: one class per status a caller may want to tell apart, each carrying
the gateway's OpenAI-shaped error (docs/api.md#error-codes) whole."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from anygate.client._models import Job


class AnygateError(Exception):
    """Every error this client raises."""


class APIStatusError(AnygateError):
    """The gateway answered with an error status. ``message``, ``type``, ``code`` and ``param``
    come from its ``{"error": {...}}`` body; ``request_id`` is its ``x-request-id`` (quote it
    to the operator); ``retry_after`` its ``Retry-After`` in seconds, when it sent one."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.request_id = request_id
        self.body = body
        self.retry_after = retry_after
        label = self.code or self.type or "error"
        where = f" (param: {param})" if param else ""
        super().__init__(f"{status} {label}: {message}{where}")

    @property
    def status_code(self) -> int:
        """The same as ``status``, under the name httpx and the OpenAI SDK use."""
        return self.status


class BadRequestError(APIStatusError):
    """400: the request is invalid; ``param`` names the field."""


class AuthenticationError(APIStatusError):
    """401: no key, or an unknown, revoked or expired one."""


class PermissionDeniedError(APIStatusError):
    """403: the key lacks the endpoint's scope, or its tenant is disabled."""


class NotFoundError(APIStatusError):
    """404: no such job, file or batch (or another tenant's: the two look alike)."""


class ConflictError(APIStatusError):
    """409: e.g. an ``Idempotency-Key`` reused with a different body."""


class PayloadTooLargeError(APIStatusError):
    """413: a body or file over the gateway's limit."""


class RateLimitError(APIStatusError):
    """429: a quota or backpressure; ``retry_after`` says when to come back."""


class InternalServerError(APIStatusError):
    """A 5xx other than 503."""


class ServiceUnavailableError(APIStatusError):
    """503: Redis unreachable, or no deployment can serve soon; ``retry_after`` is set."""


class APIConnectionError(AnygateError):
    """The gateway could not be reached, or the connection broke, after the retries allowed."""


class UnexpectedResponseError(AnygateError):
    """A success status with a body that is not what the endpoint answers (a proxy's page?)."""


class WaitTimeoutError(AnygateError):
    """``wait``/``wait_batch`` gave up before the job or batch ended; ``job`` (or ``batch``)
    is its last state seen."""

    def __init__(self, message: str, *, job: Job | None = None, batch: Any = None) -> None:
        super().__init__(message)
        self.job = job
        self.batch = batch


class WebhookVerificationError(AnygateError):
    """A webhook's signature is missing, malformed, wrong, or too old or too far ahead."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def status_error(
    status: int, body: Any, request_id: str | None, retry_after: float | None
) -> APIStatusError:
    """The typed error for an error answer; ``body`` is its parsed JSON (anything, or None)."""
    raw = body.get("error") if isinstance(body, dict) else None
    error: dict[str, Any] = raw if isinstance(raw, dict) else {}

    def text(name: str) -> str | None:
        value = error.get(name)
        return value if isinstance(value, str) else None

    kind = _BY_STATUS.get(status) or (InternalServerError if status >= 500 else APIStatusError)
    return kind(
        status,
        text("message") or f"HTTP {status}",
        type=text("type"),
        code=text("code"),
        param=text("param"),
        request_id=request_id,
        body=body,
        retry_after=retry_after,
    )
