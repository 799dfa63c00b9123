"""Take a deployment's rate-limit room before calling it (SPEC §2: the upstream never sees more
than its ``rpm``/``tpm`` in any window).

The windows live in Redis (``Broker.take_rate``), shared by every worker process and machine. A
job that does not fit goes back to the queue, delayed until it would (it waits in Redis, not in
a worker slot) and without using up an attempt; a request too large to ever fit fails at once.
Token estimates are settled to the provider's reported usage after the call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from anygate.broker import Broker, ClaimedJob
from anygate.broker.rate_window import NEVER
from anygate.broker.routing import Step, deployment_key
from anygate.config import QueueConfig
from anygate.workers.token_estimate import estimate_tokens


@dataclass(frozen=True, slots=True)
class Verdict:
    admitted: bool
    retry_after_s: float = 0.0
    never: str | None = None
    """Why the request can never be admitted (its estimate exceeds a whole window's limit)."""


ADMITTED = Verdict(True)


def guarded_window_ms(window_s: float) -> int:
    """The window counted: a request is admitted a few milliseconds before the upstream sees
    it, and by a varying amount, so two requests a window apart here could land inside one
    window there. Counting a slightly longer window (2 %, at least 100 ms) absorbs that."""
    window_ms = int(window_s * 1000)
    return window_ms + max(100, window_ms // 50)


class RateGate:
    def __init__(self, broker: Broker, queue: QueueConfig) -> None:
        self._broker = broker
        self._window_ms = guarded_window_ms(queue.rate_limit_window_s)
        self._window_s = queue.rate_limit_window_s
        self._scale = queue.rate_limit_window_s / queue.rate_limit_minute_s

    def _limit(self, per_minute: int) -> int:
        return int(per_minute * self._scale)

    async def admit(self, job: ClaimedJob, step: Step) -> Verdict:
        dep = step.deployment
        if dep.rpm is None and dep.tpm is None:
            return ADMITTED
        key, entry = deployment_key(dep), f"{job.id}:{job.attempt}"
        if dep.rpm is not None:
            taken = await self._broker.take_rate(
                f"rpm:{key}", self._window_ms, self._limit(dep.rpm), entry, 1
            )
            if not taken.admitted:
                return Verdict(False, taken.retry_after_ms / 1000)
        if dep.tpm is not None:
            body: dict[str, Any] = orjson.loads(job.body)
            cost = estimate_tokens(job.endpoint, body)
            taken = await self._broker.take_rate(
                f"tpm:{key}", self._window_ms, self._limit(dep.tpm), entry, cost
            )
            if not taken.admitted:
                if dep.rpm is not None:  # the request is not made: give its slot back
                    await self._broker.settle_rate(f"rpm:{key}", self._window_ms, entry, 0)
                if taken.retry_after_ms == NEVER:
                    return Verdict(False, never=(
                        f"the request needs about {cost} tokens, more than {dep.provider}/"
                        f"{dep.model} allows in {self._window_s:g} s (tpm {dep.tpm})"
                    ))  # fmt: skip
                return Verdict(False, taken.retry_after_ms / 1000)
        return ADMITTED

    async def settle(self, job: ClaimedJob, step: Step, usage: dict[str, Any] | None) -> None:
        """Replace the token estimate by what the provider reports having used."""
        dep = step.deployment
        total = (usage or {}).get("total_tokens")
        if dep.tpm is None or not isinstance(total, int):
            return
        await self._broker.settle_rate(
            f"tpm:{deployment_key(dep)}", self._window_ms, f"{job.id}:{job.attempt}", total
        )
