"""The Python client of anygate's native job, files and batches APIs (docs/client.md).

``Client`` (synchronous) and ``AsyncClient`` have the same methods. Importing this package needs
httpx alone; streaming a job's events also uses httpx-sse, imported when a stream starts.
"""

from anygate.client._answer import AnswerText
from anygate.client._async import AsyncClient
from anygate.client._errors import (
    AnygateError,
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    UnexpectedResponseError,
    WaitTimeoutError,
    WebhookVerificationError,
)
from anygate.client._models import (
    Batch,
    BatchRequestCounts,
    BatchResult,
    FileObject,
    Job,
    JobEvent,
    TextDelta,
)
from anygate.client._sync import Client
from anygate.client._webhooks import verify_webhook

AnygateClient = AsyncClient
"""The name of the asynchronous client before ``Client`` existed."""
AnygateClientError = APIStatusError
"""The name of the status error before the typed errors existed."""

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "AnswerText",
    "AnygateClient",
    "AnygateClientError",
    "AnygateError",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "Batch",
    "BatchRequestCounts",
    "BatchResult",
    "Client",
    "ConflictError",
    "FileObject",
    "InternalServerError",
    "Job",
    "JobEvent",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServiceUnavailableError",
    "TextDelta",
    "UnexpectedResponseError",
    "WaitTimeoutError",
    "WebhookVerificationError",
    "verify_webhook",
]
