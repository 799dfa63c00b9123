"""``cancel-6.lua``: a tenant cancels its job, queued or running."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from anygate.broker.keys import KeySpace
from anygate.broker.scripts import Arg, Scripts


class CancelStatus(enum.StrEnum):
    """The script's ``CANCEL`` table: besides job statuses, what its reply may say."""

    MISSING = "missing"
    """The job does not exist, or is not the tenant's."""


class WorkerControl(enum.StrEnum):
    """The script's ``CONTROL`` table: the verbs of ``<verb> <job id>`` on a worker's control
    channel (``KeySpace.worker_channel``)."""

    CANCEL = "cancel"
    """The job's owner cancelled it: the worker aborts its upstream call."""


DEFAULT_REASON = "cancelled_by_user"
"""The cancelled job's error ``code`` and event ``reason`` when its owner cancelled it."""


@dataclass(frozen=True, slots=True)
class CancelKeys:
    job: str
    leases: str
    redeliver: str
    delayed: str
    stats: str
    metrics: str

    @classmethod
    def of(cls, k: KeySpace, job_id: str, pool: str) -> CancelKeys:
        return cls(
            k.job(job_id),
            k.leases(pool),
            k.redeliver(pool),
            k.delayed(pool),
            k.stats(pool),
            k.metrics_jobs,
        )

    def keys(self) -> list[str]:
        return [self.job, self.leases, self.redeliver, self.delayed, self.stats, self.metrics]


@dataclass(frozen=True, slots=True)
class CancelArgs:
    prefix: str
    job_id: str
    tenant: str
    ttl_s: int
    reason: str = DEFAULT_REASON

    def argv(self) -> list[Arg]:
        return [self.prefix, self.job_id, self.tenant, self.ttl_s, self.reason]


@dataclass(frozen=True, slots=True)
class Cancelled:
    before: str
    """The job's status before the call, or ``CancelStatus.MISSING``."""
    after: str

    @property
    def found(self) -> bool:
        return self.before != CancelStatus.MISSING


def decode_cancel(reply: list[Any]) -> Cancelled:
    return Cancelled(str(reply[0]), str(reply[1]))


async def cancel(scripts: Scripts, keys: CancelKeys, args: CancelArgs) -> Cancelled:
    """Besides its keys, the script touches, under the prefix: the job's lane, ``tqueued``,
    ``tinflight``, ``ctl:<worker>`` (published), ``ev:``, ``n:`` and ``reply:``, ``body:``,
    ``batch:``, ``jobhooks``."""
    return decode_cancel(await scripts.cancel.call(keys, args))
