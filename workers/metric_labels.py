"""The label values a worker records its series under (docs/metrics.md), decided from what
happened: pure functions over the error and the decision, so the sets stay fixed and small
whatever a provider answers (its own error codes never become label values)."""

from __future__ import annotations

from anygate.broker.errors import UpstreamError, UpstreamRateLimitedError
from anygate.telemetry.metrics import UpstreamOutcome, WebhookKind
from anygate.workers.failure_policy import Action, Decision

TIMEOUT_CODE = "upstream_timeout"
CONNECTION_CODE = "upstream_connection_error"


def upstream_outcome(exc: UpstreamError) -> UpstreamOutcome:
    """A failed call's ``outcome``: a 429 (``rate_limited``), a timeout, or any other error."""
    if isinstance(exc, UpstreamRateLimitedError):
        return "rate_limited"
    if exc.code == TIMEOUT_CODE:
        return "timeout"
    return "error"


def retry_reason(decision: Decision, exc: UpstreamError) -> str | None:
    """Why a job goes round again after a failed call, or None when it does not (it fails):
    ``rate_limited`` (waits out a 429), ``fallback`` (the route's next step), else a retry on
    the same deployment: ``timeout``, ``connection`` or ``upstream_error`` (a 5xx, a broken
    stream, our own adapter's fault)."""
    if decision.action is Action.COOL_DOWN:
        return "rate_limited"
    if decision.action is Action.FALL_BACK:
        return "fallback"
    if decision.action is not Action.RETRY:
        return None
    if exc.code == TIMEOUT_CODE:
        return "timeout"
    if exc.code == CONNECTION_CODE:
        return "connection"
    return "upstream_error"


def webhook_kind(event: str) -> WebhookKind:
    """``job.succeeded`` → ``job``; ``batch.*`` and ``budget.*`` likewise."""
    kind = event.partition(".")[0]
    if kind == "batch":
        return "batch"
    if kind == "budget":
        return "budget"
    return "job"
