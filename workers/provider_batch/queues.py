"""Which parked queues exist and what each is for: the configuration's batch-taking deployments,
and the queues Redis remembers (a deployment may have left the configuration, or stopped
taking batches, while jobs still wait in its queue: those go live)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from anygate.broker.models import ENDPOINTS_BY_CODE
from anygate.broker.routing import Step, deployment_key
from anygate.broker.script_calls.provider_batch import parked_queue
from anygate.config import AnygateConfig, ProviderKind
from anygate.core.capabilities import ROUTE_ENDPOINTS
from anygate.core.parking import serves
from anygate.workers.adapters.base import Account
from anygate.workers.adapters.targets import gemini_targets, openai_targets
from anygate.workers.provider_batch.gemini_client import GeminiBatchClient
from anygate.workers.provider_batch.openai_client import OpenAIBatchClient
from anygate.workers.provider_batch.remote import BatchClient


@dataclass(frozen=True, slots=True)
class BatchQueue:
    pool: str
    name: str
    endpoint: str
    step: Step | None
    """The deployment the queue's batches go to; None when it takes batches no more."""


def batch_queues(config: AnygateConfig, registered: Mapping[str, set[str]]) -> list[BatchQueue]:
    """The queues to collect (a deployment that takes batches) and the ones only to empty
    (``step`` None): registered in Redis but not, or no longer, taking batches."""
    found: dict[tuple[str, str], BatchQueue] = {}
    for alias, route in config.models.items():
        endpoint = ROUTE_ENDPOINTS[route.kind]
        for dep in route.deployments:
            step = Step(alias, dep)
            if serves(config, step, endpoint):
                name = parked_queue(endpoint, deployment_key(dep))
                found.setdefault(
                    (dep.provider, name), BatchQueue(dep.provider, name, endpoint, step)
                )
    for pool, names in registered.items():
        for name in names:
            code = name.partition(":")[0]
            if (pool, name) not in found and code in ENDPOINTS_BY_CODE:
                found[(pool, name)] = BatchQueue(pool, name, ENDPOINTS_BY_CODE[code], None)
    return sorted(found.values(), key=lambda q: (q.pool, q.name))


def client_for(config: AnygateConfig, step: Step, http: httpx.AsyncClient) -> BatchClient:
    """The batch API of the step's provider, called with the step's account's base URL and
    credentials (the provider's when the deployment has no account of its own)."""
    provider = config.providers[step.provider]
    account = Account.of(step.deployment)
    if provider.kind is ProviderKind.GEMINI:
        gemini = gemini_targets(provider).of(account)
        return GeminiBatchClient(http, gemini.root, gemini.auth)
    openai = openai_targets(provider).of(account)
    return OpenAIBatchClient(http, openai.base_url, openai.auth)
