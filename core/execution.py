"""Which path a job takes to its provider: a live call now, or a line of the provider's own Batch
API at half price, when its deadline leaves room for a batch to come back.

Pure decisions, shared by the API (a submitted job) and the control plane (a batch's lines):
no I/O, so the rule that spends a tenant's time against its money is unit-tested on its own.

A provider batch promises an answer within its completion window (24 h) but usually answers much
sooner. The gateway keeps the job's promise, not the provider's: a job goes to a provider batch
only when its deadline leaves ``min_room_s``, and whatever has not come back by the *live cutoff*
(the deadline less ``live_reserve_s``, the time kept to finish the rest with live calls) is
finished live.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Execution(enum.StrEnum):
    LIVE = "live"
    PROVIDER_BATCH = "provider_batch"


class LiveBecause(enum.StrEnum):
    """Why a job goes live although the provider path exists (a metric label, and the job's
    record says so)."""

    STREAM = "stream"
    """A caller reads the answer as it is made."""
    ENDPOINT = "endpoint"
    """The provider's batch path does not serve this kind of request."""
    NO_DEADLINE = "no_deadline"
    """Nothing says the job may wait: a job without a deadline is wanted now."""
    DEADLINE = "deadline"
    """The deadline leaves less than ``min_room_s``."""
    DEPLOYMENT = "deployment"
    """The route's first deployment does not allow batches (``batch_api``)."""
    TENANT = "tenant"
    """The tenant has not opted in."""
    CLIENT_KEY = "client_key"
    """The client pays with its own provider key; a provider batch goes with the gateway's."""


BATCHABLE_ENDPOINTS = frozenset({"/v1/chat/completions", "/v1/embeddings"})


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    min_room_s: float
    """The least time from now to the deadline for a job to be sent to a provider batch."""
    live_reserve_s: float
    """Kept before the deadline to finish with live calls what a provider batch has not."""

    def __post_init__(self) -> None:
        if self.live_reserve_s < 0 or self.min_room_s <= self.live_reserve_s:
            raise ValueError("min_room_s must exceed live_reserve_s, which is not negative")


@dataclass(frozen=True, slots=True)
class JobFacts:
    now_ms: int
    deadline_ms: int
    """0: none."""
    stream: bool
    endpoint: str
    deployment_allows: bool
    tenant_opted_in: bool


@dataclass(frozen=True, slots=True)
class Choice:
    execution: Execution
    because: LiveBecause | None = None
    """Why it goes live; None for the provider path."""


PROVIDER_BATCH = Choice(Execution.PROVIDER_BATCH)


def choose_execution(job: JobFacts, policy: BatchPolicy) -> Choice:
    """The cheapest path that keeps the job's promise. Reasons are checked from what the caller
    asked for to what the operator allowed, so the label names the nearest cause."""
    if job.stream:
        return Choice(Execution.LIVE, LiveBecause.STREAM)
    if job.endpoint not in BATCHABLE_ENDPOINTS:
        return Choice(Execution.LIVE, LiveBecause.ENDPOINT)
    if job.deadline_ms <= 0:
        return Choice(Execution.LIVE, LiveBecause.NO_DEADLINE)
    if job.deadline_ms - job.now_ms < policy.min_room_s * 1000:
        return Choice(Execution.LIVE, LiveBecause.DEADLINE)
    if not job.deployment_allows:
        return Choice(Execution.LIVE, LiveBecause.DEPLOYMENT)
    if not job.tenant_opted_in:
        return Choice(Execution.LIVE, LiveBecause.TENANT)
    return PROVIDER_BATCH


def live_cutoff_ms(deadline_ms: int, policy: BatchPolicy) -> int:
    """When a provider batch still holding this job is given up and the job goes live."""
    return deadline_ms - int(policy.live_reserve_s * 1000)
