"""A provider batch as the gateway follows it, whatever the provider calls its states.

Both providers' batches go the same way: accepted, running, then ended one of four ways. The
gateway only needs to know whether to wait, read results, or give up; each client maps its
provider's states here, so the collector's decisions are written once.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from anygate.broker.errors import UpstreamError
from anygate.workers.provider_batch.lines import BatchRequest, ReadBack


class RemoteState(enum.StrEnum):
    RUNNING = "running"
    """Accepted and not ended (validating, queued, in progress, finalizing)."""
    DONE = "done"
    FAILED = "failed"
    """Refused as a whole (a validation error): no line ran."""
    EXPIRED = "expired"
    """The completion window ended: some lines may have run."""
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"

    @property
    def ended(self) -> bool:
        """Results (whatever ran) can be read, and nothing more will run."""
        return self in _ENDED


_ENDED = frozenset(
    {RemoteState.DONE, RemoteState.FAILED, RemoteState.EXPIRED, RemoteState.CANCELLED}
)


@dataclass(frozen=True, slots=True)
class RemoteBatch:
    id: str
    """The provider's name for it (``batch_…``, ``batches/…``)."""
    state: RemoteState
    input_ref: str | None = None
    """The uploaded input file, deleted once the batch has ended and been read."""
    output_ref: str | None = None
    error_ref: str | None = None
    message: str | None = None
    """What the provider said of a batch that failed as a whole."""


class BatchClient(Protocol):
    """One provider's batch API: each client maps its provider's states and formats."""

    def unfit(self, request: BatchRequest) -> UpstreamError | None:
        """Why this job cannot be a line of the provider's batch (a request its format cannot
        carry), or None: such a job goes live, where it fails as a live call would."""
        ...

    async def submit(
        self, upstream_model: str, endpoint: str, requests: Sequence[BatchRequest], label: str
    ) -> RemoteBatch: ...

    async def get(self, batch_id: str) -> RemoteBatch: ...

    async def cancel(self, batch_id: str) -> RemoteBatch: ...

    async def results(self, batch: RemoteBatch, job_ids: list[str]) -> ReadBack:
        """One result per job, from whatever the ended batch ran."""
        ...

    async def forget(self, batch: RemoteBatch) -> None:
        """Delete what the ended batch left at the provider (prompts and answers)."""
        ...
