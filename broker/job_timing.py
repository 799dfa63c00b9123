"""How long jobs wait and last, recorded by ``Leases`` as the scripts answer (docs/metrics.md):
a claim records each job's queue wait, a finish the job's whole life.

Both measure from a time on Redis's clock (the job's lane entry, its creation: both carried in
the claim reply) to this host's clock: clamped at zero, they are as good as the hosts' clock
sync.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from anygate.broker.models import ClaimedJob
from anygate.telemetry import observe_job, observe_queue_wait


def claimed(jobs: Sequence[ClaimedJob], pool: str) -> None:
    """Queue wait of each job claimed from its lane: since it entered the lane (its creation,
    or an operator's requeue of a dead letter). A job claimed from the redeliveries follows a
    retry or a lost lease, and waited the delay chosen for it, not the queue."""
    now_ms = time.time() * 1000
    for job in jobs:
        if job.queued_ms:
            observe_queue_wait(pool, job.priority.value, (now_ms - job.queued_ms) / 1000)


def finished(job: ClaimedJob, pool: str, *, recorded: bool, succeeded: bool) -> None:
    """A job ended by this worker: created → terminal, by outcome (a stale finish, which
    changed nothing, is not counted)."""
    if recorded and job.created_ms:
        seconds = time.time() - job.created_ms / 1000
        observe_job(pool, job.model, "succeeded" if succeeded else "failed", seconds)
