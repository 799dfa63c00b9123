"""Take a deployment's rate-limit room before calling it
(docs/queue-semantics.md#provider-rate-limits: the upstream never sees more than its ``rpm``/``tpm``
in any window).

The windows live in Redis (``RateWindows.wait``), shared by every worker process and machine. A
job that does not fit joins the limit's line and goes back to the queue, delayed until its turn
(it waits in Redis, not in a worker slot) and without using up an attempt; it comes back with
the same entry id (its attempt is refunded), which keeps its place. Waiters come back one room
at a time, not all at once, so an admission costs the same however many wait
(``rate_window.py``). A request too large to ever fit fails at once. Token estimates are settled
to the provider's reported usage after the call. A Gemini ``:countTokens`` call counts against
the tenant's rpm only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from anygate.broker import COUNT_TOKENS, Broker, ClaimedJob
from anygate.broker.rate_window import NEVER
from anygate.broker.routing import Step, deployment_key
from anygate.broker.tenants import TenantRecord
from anygate.config import QueueConfig, TenantConfig
from anygate.telemetry.metrics import RateLimit
from anygate.workers.token_estimate import estimate_tokens


@dataclass(frozen=True, slots=True)
class Verdict:
    admitted: bool
    retry_after_s: float = 0.0
    never: str | None = None
    """Why the request can never be admitted (its estimate exceeds a whole window's limit)."""
    limit: RateLimit = "rpm"
    """Which limit refused: the deployment's ``rpm`` or ``tpm``, or one of the tenant's."""


ADMITTED = Verdict(True)


def guarded_window_ms(window_s: float) -> int:
    """The window counted: a request is admitted a few milliseconds before the upstream sees
    it, and by a varying amount, so two requests a window apart here could land inside one
    window there. Counting a slightly longer window (2 %, at least 100 ms) absorbs that."""
    window_ms = int(window_s * 1000)
    return window_ms + max(100, window_ms // 50)


@dataclass(frozen=True, slots=True)
class _Limit:
    name: str
    per_window: int
    per_minute: int
    tokens: bool
    """Counts tokens (tpm) rather than requests (rpm)."""
    owner: str
    """Who the limit belongs to, for a too-large request's message."""
    tenant: bool = False

    @property
    def kind(self) -> RateLimit:
        """The ``limit`` label of a wait it causes (docs/metrics.md)."""
        if self.tenant:
            return "tenant"
        return "tpm" if self.tokens else "rpm"


class RateGate:
    """Takes room in every window a call counts against: the tenant's rpm/tpm
    (docs/queue-semantics.md#provider-rate-limits quotas: its jobs wait) and the deployment's (the
    provider's limit). All or nothing: room taken in one window is given back when a later one
    refuses."""

    def __init__(
        self, broker: Broker, queue: QueueConfig, tenants: Iterable[TenantConfig | TenantRecord]
    ) -> None:
        self._broker = broker
        self._window_ms = guarded_window_ms(queue.rate_limit_window_s)
        self._window_s = queue.rate_limit_window_s
        self._scale = queue.rate_limit_window_s / queue.rate_limit_minute_s
        self._tenant_limits: dict[str, list[_Limit]] = {}
        self.use_tenants(tenants)

    def use_tenants(self, tenants: Iterable[TenantConfig | TenantRecord]) -> None:
        """The tenants' current rpm/tpm (the tenant store changes them while we run)."""
        self._tenant_limits = {
            t.id: self._limits(
                f"t:{t.id}", t.quotas.rpm, t.quotas.tpm, f"tenant {t.id}", tenant=True
            )
            for t in tenants
            if t.quotas.rpm is not None or t.quotas.tpm is not None
        }

    def _limits(
        self, scope: str, rpm: int | None, tpm: int | None, owner: str, *, tenant: bool = False
    ) -> list[_Limit]:
        found = []
        if rpm is not None:
            found.append(_Limit(f"rpm:{scope}", int(rpm * self._scale), rpm, False, owner, tenant))
        if tpm is not None:
            found.append(_Limit(f"tpm:{scope}", int(tpm * self._scale), tpm, True, owner, tenant))
        return found

    def _limits_of(self, job: ClaimedJob, step: Step) -> list[_Limit]:
        dep = step.deployment
        limits = list(self._tenant_limits.get(job.tenant, ()))
        if job.endpoint == COUNT_TOKENS:
            # Counting tokens uses none: it is one request of the tenant's (its rpm), and
            # Gemini meters it apart from generation, so the deployment's rpm/tpm (the
            # generation quota) are not spent on it (docs/api.md#counttokens).
            return [limit for limit in limits if not limit.tokens]
        if job.client_key:
            return limits  # the client's own account (BYOK): the deployment's limits are ours
        if dep.rpm is not None or dep.tpm is not None:
            owner = f"{dep.provider}/{dep.model}"
            limits += self._limits(deployment_key(dep), dep.rpm, dep.tpm, owner)
        return limits

    async def admit(self, job: ClaimedJob, step: Step) -> Verdict:
        limits = self._limits_of(job, step)
        if not limits:
            return ADMITTED
        entry = f"{job.id}:{job.attempt}"
        cost = 0
        if any(limit.tokens for limit in limits):
            body: dict[str, Any] = orjson.loads(job.body)
            cost = estimate_tokens(job.endpoint, body)
        taken: list[_Limit] = []
        for limit in limits:
            admission = await self._broker.rates.wait(
                limit.name, self._window_ms, limit.per_window, entry, cost if limit.tokens else 1
            )
            if admission.admitted:
                taken.append(limit)
                continue
            for earlier in taken:  # the request is not made: give back what it took
                await self._broker.settle_rate(earlier.name, self._window_ms, entry, 0)
            if admission.retry_after_ms == NEVER:
                return Verdict(
                    False,
                    never=(
                        f"the request needs about {cost} tokens, more than {limit.owner} allows "
                        f"in {self._window_s:g} s (tpm {limit.per_minute})"
                    ),
                )
            return Verdict(False, admission.retry_after_ms / 1000, limit=limit.kind)
        return ADMITTED

    async def settle(self, job: ClaimedJob, step: Step, usage: dict[str, Any] | None) -> None:
        """Replace the token estimate by what the provider reports having used."""
        total = (usage or {}).get("total_tokens")
        if not isinstance(total, int):
            return
        entry = f"{job.id}:{job.attempt}"
        for limit in self._limits_of(job, step):
            if limit.tokens:
                await self._broker.settle_rate(limit.name, self._window_ms, entry, total)
