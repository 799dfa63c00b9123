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
real cost afterwards (tokens are only known once the answer is in). ``lua/ratewindow-3.lua``
is the same logic in Redis, shared by every worker process; a differential test holds the two
together.

Waiting in line (``wait``, what workers use; ``admit`` stays for the API's per-key limits, whose
refusals are answered 429 and never come back). Telling every refused request "come back when
the oldest entry expires" makes all of them come back at that one moment, when only one fits:
each admission then costs a round per waiter. Instead a refused request joins the limit's line
and is told the moment the room it will use appears, counting every waiter ahead of it as
admitted at its own moment: waiters come back one room at a time, in order, and each is
admitted on its first return (O(1) per admission, whatever the line's length). A new request is
admitted at once only when that leaves room for every waiter whose moment has come; otherwise
it goes to the back of the line, so a waiter never loses its place to later requests. A waiter
back at its moment is admitted if the window has room (the line only schedules; the log alone
decides what the upstream sees, so the limit stays exact); if a waiter ahead came late and took
its room, it keeps the front and is told when the window frees room. A waiter that does not come
back within a window of its moment (cancelled, expired, its worker lost) leaves the line; until
then its room is kept, so such a waiter costs at most its own room once.
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
    line: dict[tuple[int, str], int] = field(default_factory=dict)
    """Waiters: (cost, entry id) -> the moment room is kept for it."""

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
            return self._admit_now(now_ms, entry_id, cost)
        log = [(t, c) for t, _eid, c in self._entries]
        return Admission(False, self._fits_at(log, self._used, cost, now_ms) - now_ms)

    def _fits_at(self, entries: list[tuple[int, int]], counted: int, cost: int, start: int) -> int:
        """The first moment at or after ``start`` when ``cost`` fits, given ``entries`` (time,
        cost) in time order holding ``counted``: the oldest expire until the excess is freed."""
        excess, freed = counted + cost - self.limit, 0
        if excess <= 0:
            return start
        for at, entry_cost in entries:
            freed += entry_cost
            if freed >= excess:
                return max(start, at + self.window_ms)
        raise AssertionError("unreachable: the entries hold more than the excess")

    def _admit_now(self, now_ms: int, entry_id: str, cost: int) -> Admission:
        self._entries.append((now_ms, entry_id, cost))
        self._used += cost
        return Admission(True)

    def wait(self, now_ms: int, entry_id: str, cost: int) -> Admission:
        """Admit, or place in line and say when to come back (module docstring)."""
        self._expire(now_ms)
        key = (cost, entry_id)
        if any(eid == entry_id and c == cost for _t, eid, c in self._entries):
            return Admission(True)  # taken already
        if cost > self.limit:
            self.line.pop(key, None)
            return Admission(False, NEVER)
        self.line = {k: at for k, at in self.line.items() if at >= now_ms - self.window_ms}
        log = [(t, c) for t, _eid, c in self._entries]
        if self.line.pop(key, None) is not None:
            if self._used + cost <= self.limit:
                return self._admit_now(now_ms, entry_id, cost)
            at = self._fits_at(log, self._used, cost, now_ms)
            self.line[key] = at
            return Admission(False, at - now_ms)
        start = max([now_ms, *self.line.values()])
        counted = [(t, c) for t, c in log if t > start - self.window_ms]
        counted += [(at, c) for (c, _eid), at in self.line.items() if at > start - self.window_ms]
        counted.sort(key=lambda e: e[0])
        at = self._fits_at(counted, sum(c for _t, c in counted), cost, start)
        if at <= now_ms:
            return self._admit_now(now_ms, entry_id, cost)
        self.line[key] = at
        return Admission(False, at - now_ms)

    def settle(self, entry_id: str, actual_cost: int) -> None:
        """Replace an admitted estimate by the real cost (no-op once the entry has expired)."""
        for i, (admitted_at, eid, cost) in enumerate(self._entries):
            if eid == entry_id:
                self._entries[i] = (admitted_at, eid, actual_cost)
                self._used += actual_cost - cost
                return
