"""One call to the provider, as a worker makes it: inside its upstream span when traces are on
(docs/tracing.md), timed by outcome for the metrics (docs/metrics.md), and an adapter's own bug
turned into a retryable fault of ours rather than the deployment's."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

import structlog

from anygate.broker import COUNT_TOKENS, ClaimedJob
from anygate.broker.errors import UpstreamError, UpstreamTransientError
from anygate.broker.routing import Step, deployment_key
from anygate.config import AnygateConfig
from anygate.telemetry import observe_first_token, observe_upstream, tracing
from anygate.telemetry.metrics import UpstreamOutcome
from anygate.workers.adapters.base import Account, CallOutcome, JobLostError, ProviderAdapter
from anygate.workers.chunk_relay import ChunkRelay
from anygate.workers.metric_labels import upstream_outcome

log = structlog.get_logger(__name__)

OPERATIONS = {"/v1/chat/completions": "chat", COUNT_TOKENS: "count_tokens"}
"""``gen_ai.operation.name`` of an upstream span, by job endpoint; embeddings otherwise."""


class AdapterFaultError(UpstreamTransientError):
    """An adapter raised something it should not have: our own fault, retried like a transient
    failure but never counted against the deployment."""


class UpstreamCall:
    def __init__(self, adapter: ProviderAdapter, config: AnygateConfig, pool: str) -> None:
        self._adapter = adapter
        self._config = config
        self._pool = pool

    def _start(
        self, job: ClaimedJob, step: Step, relay: ChunkRelay, client_key: str | None
    ) -> Awaitable[CallOutcome]:
        """The adapter's call; with tracing on, inside its upstream span (no extra frame when
        off: the adapter's own coroutine is returned)."""
        dep, account = step.deployment, Account.of(step.deployment)
        if account is None:  # adapters written before accounts need not know them
            call = self._adapter.call(job, dep.model, relay, api_key=client_key)
        else:
            call = self._adapter.call(job, dep.model, relay, api_key=client_key, account=account)
        return self._traced(job, step, call) if tracing.enabled else call

    async def _traced(
        self, job: ClaimedJob, step: Step, call: Awaitable[CallOutcome]
    ) -> CallOutcome:
        provider = self._config.providers[step.provider]
        with tracing.spans.upstream(
            provider=provider.kind.value,
            operation=OPERATIONS.get(job.endpoint, "embeddings"),
            model=step.deployment.model,
            server_address=provider.resolved_base_url(),
            body=job.body,
        ):
            outcome = await call
            tracing.spans.answered(outcome.result, outcome.usage)
            return outcome

    async def call(
        self, job: ClaimedJob, step: Step, relay: ChunkRelay, client_key: str | None
    ) -> CallOutcome:
        """The provider call, timed by outcome (docs/metrics.md); a cancelled or lost one is
        not a provider's outcome and is not recorded."""
        called = time.perf_counter()
        try:
            outcome = await self._start(job, step, relay, client_key)
        except UpstreamError as exc:
            self._observe(step, upstream_outcome(exc), called, relay)
            raise
        except (asyncio.CancelledError, JobLostError):
            raise
        except Exception as exc:
            # A bug in an adapter must not wedge the job: retry it like a transient fault,
            # so it fails for good once its attempts are used up; the deployment is not to
            # blame, so its breaker does not hear of it.
            log.exception("adapter raised unexpectedly", job_id=job.id)
            self._observe(step, "error", called, relay)
            raise AdapterFaultError(
                f"internal error in the {self._pool} adapter ({type(exc).__name__})",
                code="adapter_error",
            ) from exc
        self._observe(step, "ok", called, relay)
        return outcome

    def _observe(
        self, step: Step, outcome: UpstreamOutcome, called: float, relay: ChunkRelay
    ) -> None:
        """A finished provider call's duration, and a stream's time to its first chunk."""
        pool, seconds = self._pool, time.perf_counter() - called
        observe_upstream(pool, deployment_key(step.deployment), step.alias, outcome, seconds)
        if relay.first_chunk_at is not None:
            observe_first_token(pool, step.alias, relay.first_chunk_at - called)
