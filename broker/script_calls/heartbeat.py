"""``heartbeat-2.lua``: a live worker extends its leases and says it is alive."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from anygate.broker.keys import KeySpace
from anygate.broker.scripts import Arg, Scripts
from anygate.broker.worker_registry import RegistryValue, encode_registry_value


@dataclass(frozen=True, slots=True)
class HeartbeatKeys:
    leases: str
    workers: str

    @classmethod
    def of(cls, k: KeySpace, pool: str) -> HeartbeatKeys:
        return cls(k.leases(pool), k.workers(pool))

    def keys(self) -> list[str]:
        return [self.leases, self.workers]


@dataclass(frozen=True, slots=True)
class HeartbeatArgs:
    prefix: str
    worker_id: str
    lease_ms: int
    registry: RegistryValue
    jobs: Sequence[tuple[str, int]]
    """(job id, attempt) of each job the worker runs."""

    def argv(self) -> list[Arg]:
        args: list[Arg] = [
            self.prefix,
            self.worker_id,
            self.lease_ms,
            encode_registry_value(self.registry),
        ]
        for job_id, attempt in self.jobs:
            args += [job_id, attempt]
        return args


async def heartbeat(scripts: Scripts, keys: HeartbeatKeys, args: HeartbeatArgs) -> list[str]:
    """The ids of the jobs the worker no longer owns. Besides its keys, the script reads, under
    the prefix: ``job:`` of each job."""
    return [str(job_id) for job_id in await scripts.heartbeat.call(keys, args)]
