"""``finish-5.lua``: record running jobs' outcomes, once each, many of one pool in one call;
and the usage record each adds up."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.exceptions import ResponseError

from anygate.broker.keys import KeySpace
from anygate.broker.models import JobStatus
from anygate.broker.quotas import usage_periods
from anygate.broker.redis_link import is_outage
from anygate.broker.scripts import Arg, Scripts


@dataclass(frozen=True, slots=True)
class FinishKeys:
    """The pool's keys: one call finishes any number of its jobs (each job's hash is derived
    from the prefix, in the same slot)."""

    leases: str
    stats: str
    dead: str
    metrics_jobs: str
    metrics_tokens: str

    @classmethod
    def of(cls, k: KeySpace, pool: str) -> FinishKeys:
        return cls(k.leases(pool), k.stats(pool), k.dead(pool), k.metrics_jobs, k.metrics_tokens)

    def keys(self) -> list[str]:
        return [self.leases, self.stats, self.dead, self.metrics_jobs, self.metrics_tokens]


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

    @classmethod
    def outcome(
        cls,
        prefix: str,
        job_id: str,
        attempt: int,
        *,
        model: str,
        ttl_s: int,
        succeeded: bool,
        result: Any = None,
        error: dict[str, Any] | None = None,
        usage: dict[str, Any] | None = None,
        cost_usd: float | None = None,
        history_entry: dict[str, Any] | None = None,
    ) -> FinishArgs:
        """One attempt's outcome as the script takes it, whoever ended it (a worker's call, a
        provider batch's line): a success's usage is added to the tenant's, under ``model``
        (the alias), in today's UTC day and month."""
        return cls(
            prefix=prefix,
            job_id=job_id,
            attempt=attempt,
            status=JobStatus.SUCCEEDED if succeeded else JobStatus.FAILED,
            result_json=json_arg(result),
            error_json=json_arg(error),
            usage_json=json_arg(usage),
            cost="" if cost_usd is None else repr(cost_usd),
            ttl_s=ttl_s,
            history_json=json_arg(history_entry) if history_entry else "",
            usage_record=usage_record(model, usage, datetime.now(UTC)) if succeeded else "",
        )

    def argv(self) -> list[Arg]:
        """A call that finishes this job alone."""
        return [self.prefix, self.ttl_s, *self.job_argv()]

    def job_argv(self) -> list[Arg]:
        """This job's part of a call (``FINISH_ARGS`` of them per job)."""
        return [
            self.job_id,
            self.attempt,
            self.status.value,
            self.result_json,
            self.error_json,
            self.usage_json,
            self.cost,
            self.history_json,
            self.usage_record,
        ]


def json_arg(value: Any) -> str:
    """One JSON value as a script argument; '' for none."""
    return orjson.dumps(value).decode() if value is not None else ""


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


FINISH_ARGS = 9
"""ARGV per job of ``finish-5.lua``, after the prefix and the ttl."""


@dataclass(frozen=True, slots=True)
class FinishGroup:
    """What the jobs of one call share: their pool's keys, the prefix, the retention."""

    keys: FinishKeys
    prefix: str
    ttl_s: int


class FinishError(ResponseError):
    """The script's error for one job of a call (the other jobs' outcomes stand)."""


async def finish_many(
    scripts: Scripts, group: FinishGroup, jobs: Sequence[FinishArgs]
) -> list[bool | BaseException]:
    """Per job: False when the attempt no longer owns the job, a ``FinishError`` when its
    finish failed. Besides its keys, the script touches, under the prefix: each job's hash,
    ``tinflight``, ``usage:<tenant>:<period>``, the job's lane, ``body:``, ``ev:``, ``n:`` and
    ``reply:``, ``batch:``, ``jobhooks``, ``idle:`` / ``wake:<pool>``."""
    argv: list[Arg] = [group.prefix, group.ttl_s]
    for job in jobs:
        argv.extend(job.job_argv())
    outcomes: list[bool | BaseException] = await scripts.finish(group.keys.keys(), argv, _outcomes)
    return outcomes


def _outcomes(replies: list[Any]) -> list[bool | BaseException]:
    """One outcome per job; a job's error that is an outage (Redis refusing writes: READONLY,
    MISCONF) is raised as the call's, to be waited out: such an error refuses the call's first
    write, so no job of the call was recorded and the call runs again whole."""
    outcomes = [_outcome(reply) for reply in replies]
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and is_outage(outcome):
            raise outcome
    return outcomes


def _outcome(reply: Any) -> bool | BaseException:
    if isinstance(reply, bytes | str):
        return FinishError(reply.decode() if isinstance(reply, bytes) else reply)
    return bool(reply == 1)
