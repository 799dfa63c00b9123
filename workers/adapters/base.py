"""What a provider adapter is: turn one claimed job into one upstream call.

Adapters raise ``Upstream*Error``; the worker, not the adapter, decides between retrying,
requeueing and failing, so every provider gets the same retry semantics
(docs/queue-semantics.md#retries-and-failover).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from anygate.broker import ClaimedJob
from anygate.config import Deployment
from anygate.config.secrets import SecretRef

ChunkSink = Callable[[bytes], Awaitable[None]]
"""Receives each streamed chunk (an OpenAI ``chat.completion.chunk`` as JSON) as it arrives."""


class JobLostError(Exception):
    """This attempt no longer owns its job (cancelled or reclaimed): abandon the call.

    Not an ``AnygateError``: it is control flow inside a worker and never reaches a client.
    """


@dataclass(frozen=True, slots=True)
class CallOutcome:
    result: dict[str, Any]
    """The provider-neutral, OpenAI-format response body."""
    usage: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Account:
    """One of a provider's accounts (docs/operations.md#accounts): its own base URL and key,
    each falling back to the provider's when unset."""

    name: str
    base_url: str | None = None
    api_key: SecretRef | None = None

    @classmethod
    def of(cls, dep: Deployment) -> Account | None:
        if dep.account is None:
            return None
        return cls(dep.account, dep.base_url, dep.api_key)


class ProviderAdapter(Protocol):
    async def call(
        self,
        job: ClaimedJob,
        upstream_model: str,
        on_chunk: ChunkSink,
        api_key: str | None = None,
        *,
        account: Account | None = None,
    ) -> CallOutcome:
        """Run the job's request upstream; stream chunks to ``on_chunk`` when the job streams.
        ``api_key``: the client's own provider key (BYOK) instead of the gateway's;
        ``account``: the deployment's account, whose base URL and key replace the provider's."""
        ...

    async def aclose(self) -> None: ...
