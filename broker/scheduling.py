"""The dispatch decisions of ``claim-13.lua``, as plain Python over plain data.

The script must make these decisions atomically inside Redis, so it cannot call this code; this
module is the readable statement of the policy, unit-tested on its own, and a differential test
(tests/integration/test_dispatch_matches_model.py) drives both with the same random workload and
requires the same dispatch order.

Policy (docs/queue-semantics.md#dispatch-order-weights-and-fairness):
- classes: smooth weighted round-robin (nginx's) over the classes that have work; a class without
  work sits out with its running weight reset, so dispatch is work-conserving and an idle class
  cannot bank a burst. With 16:4:1, no two non-interactive jobs are dispatched in a row while
  interactive work waits.
- tenants, within a class: deficit round-robin over a ring of the tenants that have work; the
  head tenant gets ``weight`` jobs in a row, then moves to the back; a new tenant joins at the
  back, so it waits at most one round.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from anygate.broker.keys import CLASS_ORDER
from anygate.config import Priority


def pick_class(
    current: dict[Priority, int], weights: dict[Priority, int], eligible: set[Priority]
) -> Priority | None:
    """Choose the next class and update ``current`` in place (smooth WRR)."""
    best: Priority | None = None
    total = 0
    for c in CLASS_ORDER:
        if c in eligible:
            total += weights[c]
            if best is None or current[c] + weights[c] > current[best] + weights[best]:
                best = c
        else:
            current[c] = 0
    if best is None:
        return None
    for c in CLASS_ORDER:
        if c in eligible:
            current[c] += weights[c]
    current[best] -= total
    return best


@dataclass
class TenantRing:
    """Deficit round-robin over the tenants with queued work in one class."""

    order: deque[str] = field(default_factory=deque)
    credit: dict[str, int] = field(default_factory=dict)
    queued: dict[str, int] = field(default_factory=dict)

    def add(self, tenant: str, weight: int) -> None:
        if tenant not in self.credit:
            self.order.append(tenant)
            self.credit[tenant] = weight
        self.queued[tenant] = self.queued.get(tenant, 0) + 1

    def take(self, weights: dict[str, int]) -> str | None:
        if not self.order:
            return None
        tenant = self.order[0]
        self.queued[tenant] -= 1
        if self.queued[tenant] <= 0:
            self.order.popleft()
            del self.credit[tenant]
            del self.queued[tenant]
        else:
            self.credit[tenant] -= 1
            if self.credit[tenant] <= 0:
                self.order.rotate(-1)
                self.credit[tenant] = weights.get(tenant, 1)
        return tenant


@dataclass
class DispatchModel:
    """The whole policy for one pool: which (class, tenant) each successive claim serves."""

    class_weights: dict[Priority, int]
    tenant_weights: dict[str, int] = field(default_factory=dict)
    rings: dict[Priority, TenantRing] = field(
        default_factory=lambda: {c: TenantRing() for c in CLASS_ORDER}
    )
    current: dict[Priority, int] = field(default_factory=lambda: dict.fromkeys(CLASS_ORDER, 0))

    def enqueue(self, priority: Priority, tenant: str, weight: int = 1) -> None:
        self.tenant_weights[tenant] = weight
        self.rings[priority].add(tenant, weight)

    def claim(self) -> tuple[Priority, str] | None:
        eligible = {c for c in CLASS_ORDER if self.rings[c].order}
        chosen = pick_class(self.current, self.class_weights, eligible)
        if chosen is None:
            return None
        tenant = self.rings[chosen].take(self.tenant_weights)
        assert tenant is not None
        return chosen, tenant


def estimated_start_ms(
    place: int, queued_in_pool: int, worker_slots: int, mean_service_ms: int | None, now_ms: int
) -> int | None:
    """A rough ETA: the rounds of worker slots ahead of the job times the mean service time.

    ``place`` counts the job's own lane; the pool-wide count bounds it from above, as other
    tenants and classes share the slots. Unknown (None) until a worker has finished a job.
    """
    if place <= 0 or worker_slots <= 0 or mean_service_ms is None:
        return None
    ahead = max(place, queued_in_pool) - 1
    return now_ms + (ahead // worker_slots) * mean_service_ms
