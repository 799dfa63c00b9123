"""Whether a new job waits for a provider batch, and where: the configuration's side of
``core/execution.py``, shared by the native job API and a batch's expansion.

A job is parked in the queue of its route's first deployment (one queue per endpoint and
deployment: a provider batch serves one endpoint of one model) when that deployment takes
batches for that endpoint, its tenant opted in, nobody pays with their own key, and its deadline
leaves room; it goes live at its *cutoff* if no batch has answered by then.
"""

from __future__ import annotations

from dataclasses import dataclass

from anygate.broker.routing import Step, deployment_key
from anygate.broker.script_calls.provider_batch import parked_queue
from anygate.config import AnygateConfig, Deployment, ProviderKind
from anygate.core.execution import (
    BatchPolicy,
    Choice,
    Execution,
    JobFacts,
    LiveBecause,
    choose_execution,
    live_cutoff_ms,
)

CHAT = "/v1/chat/completions"

_BATCH_ENDPOINTS = {
    ProviderKind.OPENAI: frozenset({CHAT, "/v1/embeddings"}),
    ProviderKind.GEMINI: frozenset({CHAT}),  # Gemini's batch mode serves generateContent only
}
"""What each provider's batch API serves; other kinds have none."""


@dataclass(frozen=True, slots=True)
class Parking:
    choice: Choice
    queue: str = ""
    """``parked_queue``; '' when the job goes live."""
    cutoff_ms: int = 0

    @property
    def parked(self) -> bool:
        return self.choice.execution is Execution.PROVIDER_BATCH


def policy_of(config: AnygateConfig) -> BatchPolicy:
    pb = config.provider_batches
    return BatchPolicy(min_room_s=pb.min_room_s, live_reserve_s=pb.live_reserve_s)


def takes_batches(kind: ProviderKind, deployment: Deployment, endpoint: str) -> bool:
    """A deployment of this provider kind takes provider batches for this endpoint."""
    return deployment.batch_api and endpoint in _BATCH_ENDPOINTS.get(kind, frozenset())


def serves(config: AnygateConfig, step: Step, endpoint: str) -> bool:
    """The step's deployment takes provider batches for this endpoint."""
    return takes_batches(config.providers[step.provider].kind, step.deployment, endpoint)


def parking(
    config: AnygateConfig,
    first: Step,
    endpoint: str,
    *,
    deadline_ms: int,
    opted_in: bool,
    client_key: bool,
    now_ms: int,
) -> Parking:
    """``deadline_ms``: the job's, or its batch's completion window's end; ``client_key``: the
    client pays with its own provider key (a provider batch is sent with the gateway's)."""
    facts = JobFacts(
        now_ms=now_ms,
        deadline_ms=deadline_ms,
        stream=False,
        endpoint=endpoint,
        deployment_allows=serves(config, first, endpoint),
        tenant_opted_in=opted_in,
    )
    policy = policy_of(config)
    choice = choose_execution(facts, policy)
    if choice.execution is Execution.PROVIDER_BATCH and client_key:
        choice = Choice(Execution.LIVE, LiveBecause.CLIENT_KEY)
    if choice.execution is not Execution.PROVIDER_BATCH:
        return Parking(choice)
    queue = parked_queue(endpoint, deployment_key(first.deployment))
    return Parking(choice, queue, live_cutoff_ms(deadline_ms, policy))
