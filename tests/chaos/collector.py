"""Watch every job in Redis while the run goes on, so that nothing is judged from a record that
had already expired: finished jobs live only ``RESULT_TTL_S`` seconds.

Every ``SWEEP_S`` the collector reads new entries of each tenant's job index (``tjobs:<tenant>``,
every job ever created, in order) and then, pipelined, the hash and event log of every job not yet
seen finished (and of finished ones for a few more sweeps, to catch a late second terminal
event). Event logs are merged by event id across reads, so an event seen once is never forgotten,
even if a Redis restart later loses it. A sweep that meets Redis down simply tries again later.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from tests.chaos.settings import TENANT_KEYS

SWEEP_S = 2.0
REREAD_FINISHED = 3
"""Sweeps a finished job is still read in, to catch an event written after its end."""
PIPELINE_CHUNK = 200
TERMINAL = frozenset({"succeeded", "failed", "cancelled", "expired"})


@dataclass
class JobSeen:
    id: str
    fields: dict[str, str] = field(default_factory=dict)
    """The job hash as last read while it existed."""
    events: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Event id -> (type, data): the union of every read of ``ev:<id>``."""
    finished_reads: int = 0
    gone: bool = False
    """Its hash was read empty after it had been seen (expired, or lost)."""

    @property
    def status(self) -> str:
        return self.fields.get("status", "")

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def ordered_events(self) -> list[tuple[str, str, str]]:
        def key(event_id: str) -> tuple[int, int]:
            ms, _, seq = event_id.partition("-")
            return int(ms), int(seq or 0)

        return [(i, *self.events[i]) for i in sorted(self.events, key=key)]


class Collector:
    def __init__(self, url: str, prefix: str) -> None:
        self._url = url
        self._prefix = prefix
        self.jobs: dict[str, JobSeen] = {}
        self._cursor = dict.fromkeys(TENANT_KEYS, "-")
        self.failed_sweeps = 0

    def _redis(self) -> Redis:
        client: Redis = Redis.from_url(
            self._url, decode_responses=True, socket_timeout=2, socket_connect_timeout=2
        )
        return client

    def add(self, job_ids: Iterable[str]) -> None:
        for job_id in job_ids:
            self.jobs.setdefault(job_id, JobSeen(job_id))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.sweep()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SWEEP_S)

    async def sweep(self, *, everything: bool = False) -> bool:
        """One pass; ``everything`` rereads every job still in Redis. False if Redis failed."""
        try:
            async with self._redis() as r:
                await self._follow_indexes(r)
                wanted = [j for j in self.jobs.values() if everything or self._due(j)]
                for start in range(0, len(wanted), PIPELINE_CHUNK):
                    await self._read(r, wanted[start : start + PIPELINE_CHUNK])
        except (RedisError, OSError):
            self.failed_sweeps += 1
            return False
        return True

    def _due(self, job: JobSeen) -> bool:
        return not job.gone and (not job.terminal or job.finished_reads < REREAD_FINISHED)

    async def _follow_indexes(self, r: Redis) -> None:
        for tenant in self._cursor:
            while True:
                cursor = self._cursor[tenant]
                start = "-" if cursor == "-" else f"({cursor}"
                entries: list[Any] = await r.xrange(
                    f"{self._prefix}tjobs:{tenant}", min=start, count=1000
                )
                for entry_id, values in entries:
                    self.add([values["j"]])
                    self._cursor[tenant] = entry_id
                if len(entries) < 1000:
                    break

    async def _read(self, r: Redis, jobs: list[JobSeen]) -> None:
        async with r.pipeline(transaction=False) as pipe:
            for job in jobs:
                pipe.hgetall(f"{self._prefix}job:{job.id}")
                pipe.xrange(f"{self._prefix}ev:{job.id}")
            replies = await pipe.execute()
        for i, job in enumerate(jobs):
            fields, events = replies[2 * i], replies[2 * i + 1]
            if not fields:
                job.gone = job.gone or bool(job.fields)
                continue
            job.fields = fields
            for event_id, values in events:
                job.events.setdefault(event_id, (values.get("t", ""), values.get("d", "")))
            if job.terminal:
                job.finished_reads += 1

    def unfinished(self) -> list[str]:
        return [j.id for j in self.jobs.values() if not j.terminal and not j.gone]

    def last_end(self) -> float:
        """When the last job ended (seconds), from the records' ``finished_ms``."""
        ends = [int(j.fields.get("finished_ms") or 0) for j in self.jobs.values()]
        return max(ends, default=0) / 1000 or time.time()
