"""``pbtake-5.lua`` and ``pbrelease-3.lua``: jobs into a provider batch, and back to live calls.

Parking itself is part of the enqueue (``enqueue-2.lua``, a record with ``pbq`` and
``cutoff_ms``); an answer from a provider batch is recorded by ``finish-5.lua`` like any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from anygate.broker.keys import KeySpace
from anygate.broker.models import ENDPOINT_CODES
from anygate.broker.scripts import Arg, Scripts


def parked_queue(endpoint: str, deployment: str) -> str:
    """Where a job waits for a provider batch: one queue per endpoint and deployment, since a
    provider batch serves one endpoint of one model (``enqueue-2.lua``'s ``pbq`` field)."""
    return f"{ENDPOINT_CODES[endpoint]}:{deployment}"


TAKE_FIELDS = 4
"""Fields per job in ``pbtake-5.lua``'s reply."""


@dataclass(frozen=True, slots=True)
class TakenJob:
    id: str
    attempt: int
    """The attempt the provider batch holds: the fence of its finish or release."""
    body: bytes
    cutoff_ms: int


@dataclass(frozen=True, slots=True)
class TakeKeys:
    parked: str
    stats: str
    metrics_jobs: str
    record: str
    active: str

    @classmethod
    def of(cls, k: KeySpace, pool: str, queue: str, batch_id: str) -> TakeKeys:
        return cls(
            k.parked(pool, queue),
            k.stats(pool),
            k.metrics_jobs,
            k.provider_batch(pool, batch_id),
            k.provider_batches(pool),
        )

    def keys(self) -> list[str]:
        return [self.parked, self.stats, self.metrics_jobs, self.record, self.active]


@dataclass(frozen=True, slots=True)
class TakeArgs:
    prefix: str
    pool: str
    batch_id: str
    max_jobs: int
    min_cutoff_ms: int
    """Jobs that must go live before this are left for the release (too late for a batch)."""
    queue: str
    """The parked queue's name (``parked_queue``): what the batch's lines share."""

    def argv(self) -> list[Arg]:
        return [
            self.prefix,
            self.pool,
            self.batch_id,
            self.max_jobs,
            self.min_cutoff_ms,
            self.queue,
        ]


def decode_take(reply: Sequence[Any]) -> list[TakenJob]:
    """The script's reply as the broker's clients return it (``decode_responses``: text)."""
    return [
        TakenJob(
            id=reply[i],
            attempt=int(reply[i + 1]),
            body=reply[i + 2].encode(),
            cutoff_ms=int(reply[i + 3]),
        )
        for i in range(0, len(reply), TAKE_FIELDS)
    ]


async def take(scripts: Scripts, keys: TakeKeys, args: TakeArgs) -> list[TakenJob]:
    """Besides its keys, the script touches, under the prefix: each job's hash, body and event
    log (``n:`` published), ``pbjobs:<batch>``, ``tqueued``."""
    return decode_take(await scripts.pbtake.call(keys, args))


@dataclass(frozen=True, slots=True)
class ReleaseKeys:
    redeliver: str
    stats: str
    parked: str

    @classmethod
    def of(cls, k: KeySpace, pool: str, queue: str) -> ReleaseKeys:
        return cls(k.redeliver(pool), k.stats(pool), k.parked(pool, queue))

    def keys(self) -> list[str]:
        return [self.redeliver, self.stats, self.parked]


@dataclass(frozen=True, slots=True)
class ReleaseArgs:
    prefix: str
    pool: str
    batch_id: str
    """'' for parked jobs (never taken into a batch)."""
    reason: str
    """Why the jobs go live (the ``retry`` event's reason, the record's ``live_because``)."""
    jobs: Sequence[tuple[str, int | None]]
    """(job id, the attempt the batch holds); None for a parked job."""

    def argv(self) -> list[Arg]:
        out: list[Arg] = [self.prefix, self.pool, self.batch_id, self.reason]
        for job_id, attempt in self.jobs:
            out += [job_id, "" if attempt is None else attempt]
        return out


async def release(scripts: Scripts, keys: ReleaseKeys, args: ReleaseArgs) -> list[bool]:
    """Whether each job went live. Besides its keys, the script touches, under the prefix: each
    job's hash and event log, ``tqueued``, ``idle:`` / ``wake:<pool>``."""
    if not args.jobs:
        return []
    return [bool(int(v)) for v in await scripts.pbrelease.call(keys, args)]
