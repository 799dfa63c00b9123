"""``reclaim-6.lua``: redeliver the jobs whose lease lapsed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from anygate.broker.keys import KeySpace
from anygate.broker.scripts import Arg, Scripts

IN_GRACE: Final = -1
"""The reply while the grace after a Redis outage lasts: no lease lapses while Redis was away."""


@dataclass(frozen=True, slots=True)
class ReclaimKeys:
    leases: str
    redeliver: str
    stats: str
    dead: str
    workers: str
    metrics: str

    @classmethod
    def of(cls, k: KeySpace, pool: str) -> ReclaimKeys:
        return cls(
            k.leases(pool),
            k.redeliver(pool),
            k.stats(pool),
            k.dead(pool),
            k.workers(pool),
            k.metrics_jobs,
        )

    def keys(self) -> list[str]:
        return [self.leases, self.redeliver, self.stats, self.dead, self.workers, self.metrics]


@dataclass(frozen=True, slots=True)
class ReclaimArgs:
    prefix: str
    max_lost: int
    """Deliveries lost with their worker after which the job fails (a poison job)."""
    limit: int
    ttl_s: int
    pool: str
    worker_expiry_ms: int
    """Registry entries silent this long are forgotten."""
    stall_ms: int
    lease_ms: int

    def argv(self) -> list[Arg]:
        return [
            self.prefix,
            self.max_lost,
            self.limit,
            self.ttl_s,
            self.pool,
            self.worker_expiry_ms,
            self.stall_ms,
            self.lease_ms,
        ]


async def reclaim(scripts: Scripts, keys: ReclaimKeys, args: ReclaimArgs) -> int:
    """The count of jobs reclaimed or failed, or ``IN_GRACE``. Besides its keys, the script
    touches, under the prefix: ``clock``, ``tinflight``, ``tqueued``, each job's ``job:``, lane,
    ``body:``, ``ev:``, ``n:`` and ``reply:``, ``batch:``, ``jobhooks``, ``idle:`` /
    ``wake:<pool>``."""
    return int(await scripts.reclaim.call(keys, args))
