"""Counters kept per shard, read as one (docs/scaling.md).

A script counts what it changes on the shard it runs on (a tenant's usage, queued and in-flight
jobs, the cluster counters, a batch's ended lines), so each shard holds its part of a total and a
reader adds the parts up. On one Redis there is one part and the sum is that part.
"""

from __future__ import annotations

from collections.abc import Iterable


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def sum_fields(parts: Iterable[dict[str, str]]) -> dict[str, str]:
    """Field-wise sums of hashes of numbers (integers stay integers); a field that is not a
    number keeps the first value seen."""
    total: dict[str, int | float | str] = {}
    for part in parts:
        for name, text in part.items():
            try:
                value = _number(text)
            except ValueError:
                total.setdefault(name, text)
                continue
            seen = total.get(name, 0)
            total[name] = value if isinstance(seen, str) else seen + value
    return {name: _spell(value) for name, value in total.items()}


def _spell(value: int | float | str) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)
