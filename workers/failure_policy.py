"""What happens to a job after its upstream call failed: a pure decision
(docs/queue-semantics.md#retries-and-failover, docs/operations.md#providers-and-routing).

- rate limited (429): back to the queue after the provider's Retry-After, attempt refunded; a
  job that has waited out ``max_cool_downs`` of them moves to its route's next step when there
  is one, and otherwise keeps waiting: a 429 never fails a job (its deadline bounds the wait);
- out of credit (OpenAI's 429 ``insufficient_quota``): the route's next step, or a failure;
- transient (5xx, timeout, dropped connection): retry the same deployment after a jittered
  backoff, up to ``attempts_per_deployment``; then fall back to the next step of the route,
  which may be another provider; when there is none, the job fails;
- rejected (a 4xx other than 429): fails at once with the provider's message; a request the
  provider calls invalid is not made valid by another provider.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from anygate.broker import ClaimedJob
from anygate.broker.errors import (
    UpstreamError,
    UpstreamRateLimitedError,
    UpstreamTransientError,
)
from anygate.config import QueueConfig
from anygate.workers.backoff import retry_delay

DEFAULT_RATE_LIMIT_DELAY_S = 1.0
OUT_OF_CREDIT = "insufficient_quota"
"""OpenAI's code for a 429 that means the account has no credit left, not "slow down"."""


class Action(enum.Enum):
    COOL_DOWN = "cool_down"
    RETRY = "retry"
    FALL_BACK = "fall_back"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    delay_s: float = 0.0
    next_step: int | None = None


def decide(exc: UpstreamError, job: ClaimedJob, plan_length: int, queue: QueueConfig) -> Decision:
    if exc.code == OUT_OF_CREDIT:  # waiting will not help; another deployment may
        if job.step + 1 < plan_length:
            return Decision(Action.FALL_BACK, next_step=job.step + 1)
        return Decision(Action.FAIL)
    if isinstance(exc, UpstreamRateLimitedError):
        if job.cooled >= queue.max_cool_downs and job.step + 1 < plan_length:
            return Decision(Action.FALL_BACK, next_step=job.step + 1)
        delay = exc.retry_after if exc.retry_after is not None else DEFAULT_RATE_LIMIT_DELAY_S
        return Decision(Action.COOL_DOWN, delay_s=delay)
    if not isinstance(exc, UpstreamTransientError):
        return Decision(Action.FAIL)
    if job.attempts_on_step < queue.attempts_per_deployment:
        delay = retry_delay(
            job.attempts_on_step, base_s=queue.retry_base_delay_s, cap_s=queue.retry_max_delay_s
        )
        return Decision(Action.RETRY, delay_s=delay)
    if job.step + 1 < plan_length:
        return Decision(Action.FALL_BACK, next_step=job.step + 1)
    return Decision(Action.FAIL)
