"""Audit a mock provider's request log against a rate limit, after the fact.

Windows are half-open, `[t, t + window_s)`, as the mock's limiter counts them: a request charged
at `t` stops counting at `t + window_s`. The busiest window always starts at some arrival, so
checking the window that starts at each arrival checks every possible window.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any


def max_in_window(
    entries: Iterable[Mapping[str, Any]],
    window_s: float,
    *,
    tokens: bool = False,
    statuses: Collection[int] | None = None,
    at: str = "arrived_at",
) -> int:
    """The most requests (or, with `tokens`, the most tokens) inside any one window.

    `statuses` keeps only entries answered with one of them; entries without a time under `at`
    (the client left before the request was whole) are skipped. `at="started_at"` audits the
    time the first byte arrived instead of the time the limiter counted the request.
    """
    if window_s <= 0:
        raise ValueError("window_s must be positive")
    points = sorted(
        (float(entry[at]), int(entry.get("tokens", 0)) if tokens else 1)
        for entry in entries
        if entry.get(at) is not None and (statuses is None or entry.get("status") in statuses)
    )
    best = inside = 0
    end = 0
    for first, weight in points:
        while end < len(points) and points[end][0] < first + window_s:
            inside += points[end][1]
            end += 1
        best = max(best, inside)
        inside -= weight
    return best
