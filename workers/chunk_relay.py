"""Relay a job's streamed chunks to the broker, batching only what is already waiting.

Group commit: the first chunk goes out at once; chunks that arrive while that call is in flight
go out together in the next one. A slow upstream (one chunk every few tens of milliseconds) costs
one broker call per chunk and no added latency; a fast one (a burst of twenty chunks in one
network read) costs one or two calls instead of twenty. At most one call is in flight per job, so
chunks stay in order.

Redis trouble is never the upstream call's problem: the worker's broker waits out an outage
(``broker/transient.py``) while chunks keep arriving here and wait their turn, numbered within
the attempt, so a call repeated after its reply was lost appends nothing twice. The call goes on;
only ``flush`` waits until every chunk is in the log.
"""

from __future__ import annotations

import asyncio
import time

from anygate.broker import Broker, ClaimedJob
from anygate.workers.adapters.base import JobLostError


class ChunkRelay:
    def __init__(self, broker: Broker, job: ClaimedJob) -> None:
        self._broker = broker
        self._job = job
        self._pending: list[bytes] = []
        self._next_seq = 1
        """The number of the first chunk in ``_pending`` (chunks are numbered from 1)."""
        self._sending: asyncio.Task[None] | None = None
        self._lost = False
        self._failed: BaseException | None = None
        self.first_chunk_at: float | None = None
        """``time.perf_counter()`` when the first chunk arrived (time to first token)."""

    async def __call__(self, chunk: bytes) -> None:
        """The adapter's chunk sink: never waits for Redis, only queues the chunk."""
        self._raise_if_lost()
        if self.first_chunk_at is None:
            self.first_chunk_at = time.perf_counter()
        self._pending.append(chunk)
        if self._sending is None:
            self._sending = asyncio.create_task(self._send_all())

    async def _send_all(self) -> None:
        try:
            while self._pending and not self._lost:
                batch, self._pending = self._pending, []
                first, self._next_seq = self._next_seq, self._next_seq + len(batch)
                if not await self._broker.append(self._job, "chunk", *batch, first_seq=first):
                    self._lost = True
        except Exception as exc:  # not Redis being away (waited out): a bug, raised by flush()
            self._failed = exc
        finally:
            self._sending = None

    def _raise_if_lost(self) -> None:
        if self._lost:
            raise JobLostError(self._job.id)

    @property
    def lost(self) -> bool:
        """The job was taken from this attempt (cancelled or reclaimed)."""
        return self._lost

    async def settle(self) -> None:
        """Wait until every queued chunk has been sent (or sending has failed)."""
        while self._sending is not None:
            await asyncio.shield(self._sending)

    async def flush(self) -> None:
        """Wait until every chunk is in the job's log; raises ``JobLostError`` if the job was
        taken from this attempt meanwhile (its outcome must not be recorded then), or what
        made sending fail."""
        await self.settle()
        if self._failed is not None:
            raise self._failed
        self._raise_if_lost()

    def abandon(self) -> None:
        """The call failed or was cancelled: stop sending what has not gone out yet."""
        self._pending.clear()
        if self._sending is not None:
            self._sending.cancel()
