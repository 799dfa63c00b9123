"""One log line per state change of a job in a worker (docs/operations.md#logs).

``Leases`` calls these right after the script that made the change answered, so a line says what
Redis now holds: a finish or requeue that lost to another attempt (or to a cancel) logs nothing
at info, since the change it meant to make did not happen. Every line carries the same fields
(``job_id``, ``tenant``, ``model``, ``deployment``, ``attempt``, ``pool``), and each change has
one event name:

- ``job started``: claimed by a worker, an attempt begins;
- ``job retried``: a failed attempt that spends one (a transient upstream error, or a fallback
  to the route's next step), with ``reason``;
- ``job requeued``: back to the queue without spending an attempt (a 429 cool-down, an open
  breaker, a full rate window, a worker shutting down), with ``reason``;
- ``job succeeded``; ``job failed`` with ``reason`` (the job error's code) at ``warning``: a
  provider's refusal is the job's outcome, not the gateway's error;
- ``job cancelled`` (and ``job abandoned`` when the lease was lost), from the worker itself.
"""

from __future__ import annotations

from typing import Any

import structlog

from anygate.broker.models import ClaimedJob
from anygate.broker.routing import decode_plan, deployment_for, deployment_key
from anygate.config import AnygateConfig

log = structlog.get_logger("anygate.jobs")


def deployment_of(
    job: ClaimedJob, pool: str, config: AnygateConfig, step: int | None = None
) -> str:
    """``provider:model`` of the job's step (``step`` when it moves), as ``deployment_key``
    names it. A job without a plan is served by its alias's deployment in its pool (what the
    worker derives too, ``deployment_for``); the pool alone when even that is unknown."""
    at = job.step if step is None else step
    if job.plan:
        parts = decode_plan(job.plan)
        if 0 <= at < len(parts) and len(parts[at]) in (3, 4):
            key = f"{parts[at][1]}:{parts[at][2]}"
            return key if len(parts[at]) == 3 else f"{key}@{parts[at][3]}"
        return pool
    dep = deployment_for(config, job.model, pool)
    return deployment_key(dep) if dep is not None else pool


class JobLog:
    """The lines, for one process's configuration (which names a plan-less job's deployment)."""

    def __init__(self, config: AnygateConfig) -> None:
        self._config = config

    def fields(self, job: ClaimedJob, pool: str) -> dict[str, Any]:
        return {
            "job_id": job.id,
            "tenant": job.tenant,
            "model": job.model,
            "deployment": deployment_of(job, pool, self._config),
            "attempt": job.attempt,
            "pool": pool,
        }

    def started(self, jobs: list[ClaimedJob], pool: str, worker_id: str) -> None:
        for job in jobs:
            log.info("job started", worker_id=worker_id, **self.fields(job, pool))

    def finished(
        self,
        job: ClaimedJob,
        pool: str,
        *,
        recorded: bool,
        succeeded: bool,
        error: dict[str, Any] | None,
        cost_usd: float | None,
    ) -> None:
        fields = self.fields(job, pool)
        if not recorded:
            log.debug("job outcome superseded", **fields)
        elif succeeded:
            log.info("job succeeded", cost_usd=cost_usd, **fields)
        else:
            reason = (error or {}).get("code") or (error or {}).get("type") or "error"
            log.warning("job failed", reason=reason, **fields)

    def requeued(
        self,
        job: ClaimedJob,
        pool: str,
        *,
        recorded: bool,
        reason: str,
        refund_attempt: bool,
        delay_s: float,
        to_step: int | None,
    ) -> None:
        fields = self.fields(job, pool)
        if not recorded:
            log.debug("job outcome superseded", reason=reason, **fields)
            return
        extra: dict[str, Any] = {"reason": reason, "delay_s": round(delay_s, 3)}
        if to_step is not None and to_step != job.step:
            extra["to_deployment"] = deployment_of(job, pool, self._config, to_step)
        log.info("job requeued" if refund_attempt else "job retried", **extra, **fields)

    def abandoned(self, job: ClaimedJob, pool: str, reason: str) -> None:
        """The worker stopped working on the job: cancelled by its owner, or its lease was
        lost."""
        event = "job cancelled" if reason == "cancelled" else "job abandoned"
        log.info(event, reason=reason, **self.fields(job, pool))
