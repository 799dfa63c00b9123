"""``finish-6.lua``: record a running job's outcome, once; and the usage record it adds up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from anygate.broker.keys import KeySpace
from anygate.broker.models import JobStatus
from anygate.broker.quotas import usage_periods
from anygate.broker.scripts import Arg, Scripts


@dataclass(frozen=True, slots=True)
class FinishKeys:
    job: str
    leases: str
    stats: str
    dead: str
    metrics_jobs: str
    metrics_tokens: str

    @classmethod
    def of(cls, k: KeySpace, job_id: str, pool: str) -> FinishKeys:
        return cls(
            k.job(job_id),
            k.leases(pool),
            k.stats(pool),
            k.dead(pool),
            k.metrics_jobs,
            k.metrics_tokens,
        )

    def keys(self) -> list[str]:
        return [
            self.job,
            self.leases,
            self.stats,
            self.dead,
            self.metrics_jobs,
            self.metrics_tokens,
        ]


@dataclass(frozen=True, slots=True)
class FinishArgs:
    prefix: str
    job_id: str
    attempt: int
    status: JobStatus
    """``SUCCEEDED`` or ``FAILED``."""
    result_json: str
    """Each ``*_json`` is one JSON value (orjson), or '' for none."""
    error_json: str
    usage_json: str
    cost: str
    """``repr`` of the cost in USD, or ''."""
    ttl_s: int
    history_json: str
    usage_record: str
    """``usage_record``: what to add to the tenant's usage, or ''."""

    def argv(self) -> list[Arg]:
        return [
            self.prefix,
            self.job_id,
            self.attempt,
            self.status.value,
            self.result_json,
            self.error_json,
            self.usage_json,
            self.cost,
            self.ttl_s,
            self.history_json,
            self.usage_record,
        ]


def usage_record(model: str, usage: dict[str, Any] | None, now: datetime) -> str:
    """ARGV 11: the tokens to add to the tenant's usage, in ``now``'s UTC day and month (the
    finishing worker's clock; the day boundary is a matter of milliseconds):
    ``day|month|prompt tokens|completion tokens|model``."""
    if not usage:
        return ""
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens")
    if not isinstance(prompt, int):
        prompt = 0
    if not isinstance(completion, int):
        total = usage.get("total_tokens")
        completion = total - prompt if isinstance(total, int) and total >= prompt else 0
    periods = usage_periods(now)
    return f"{periods.day}|{periods.month}|{prompt}|{completion}|{model}"


async def finish(scripts: Scripts, keys: FinishKeys, args: FinishArgs) -> bool:
    """False when the attempt no longer owns the job. Besides its keys, the script touches,
    under the prefix: ``tinflight``, ``usage:<tenant>:<period>``, the job's lane, ``body:``,
    ``ev:``, ``n:`` and ``reply:``, ``batch:``, ``jobhooks``, ``idle:`` / ``wake:<pool>``."""
    return bool(await scripts.finish.call(keys, args) == 1)
