"""Sliding-window rate limits (docs/queue-semantics.md#provider-rate-limits: provider requests/min
and tokens/min), the pure model.

Why a window log and not a token bucket or GCRA: the contract is "the upstream never sees more
than its limit in any window", for any window, with costs that vary per request (tokens). A
bucket of capacity L refilled at L per window admits up to 2L in some window; GCRA without
tolerance is exact for unit costs but overshoots by up to one request's cost for varying ones.
A log of what was admitted in the last window is exact for both, and small: one entry per
request in the window (a deployment at 10,000 requests/min keeps 10,000 entries).

Semantics: an entry admitted at ``t`` counts for ``[t, t + window)``. A request of cost ``c`` is
admitted at ``now`` when the entries still counting plus ``c`` stay within the limit; otherwise
the answer says how long until enough of them expire. Admitted estimates can be settled to the
real cost afterwards (tokens are only known once the answer is in). ``lua/ratewindow-2.lua``
is the same logic in Redis, shared by every worker process; a differential test holds the two
together.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

NEVER = -1
"""``retry_after_ms`` of a request whose cost alone exceeds the limit: it can never be admitted."""


@dataclass(frozen=True, slots=True)
class Admission:
    admitted: bool
    retry_after_ms: int = 0
    """When not admitted: how long until it would be (``NEVER`` if it never can)."""


@dataclass
class SlidingWindow:
    window_ms: int
    limit: int
    _entries: deque[tuple[int, str, int]] = field(default_factory=deque)
    _used: int = 0

    @property
    def used(self) -> int:
        return self._used

    def _expire(self, now_ms: int) -> None:
        while self._entries and self._entries[0][0] <= now_ms - self.window_ms:
            self._used -= self._entries.popleft()[2]

    def admit(self, now_ms: int, entry_id: str, cost: int) -> Admission:
        if cost > self.limit:
            return Admission(False, NEVER)
        self._expire(now_ms)
        if self._used + cost <= self.limit:
            self._entries.append((now_ms, entry_id, cost))
            self._used += cost
            return Admission(True)
        excess, freed = self._used + cost - self.limit, 0
        for admitted_at, _id, entry_cost in self._entries:
            freed += entry_cost
            if freed >= excess:
                return Admission(False, admitted_at + self.window_ms - now_ms)
        raise AssertionError("unreachable: the entries hold more than the excess")

    def settle(self, entry_id: str, actual_cost: int) -> None:
        """Replace an admitted estimate by the real cost (no-op once the entry has expired)."""
        for i, (admitted_at, eid, cost) in enumerate(self._entries):
            if eid == entry_id:
                self._entries[i] = (admitted_at, eid, actual_cost)
                self._used += actual_cost - cost
                return
