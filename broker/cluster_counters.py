"""The cluster's job and token counters as the scripts keep them, and their one reader.

The scripts that make a state change add to two hashes in the same step (``count`` in
``lua/_lib.lua``), so a count is never lost with a process nor made twice by two, and never
resets (docs/metrics.md). Each field names what it counts, its parts joined by ``|``, the kind
first:

- ``metrics:jobs`` (``KeySpace.metrics_jobs``): ``submitted|<pool>|<class>|<model>``
  (``enqueue-2.lua``), ``started|<pool>|<model>`` (each attempt's claim, ``claim-13.lua``),
  ``finished|<pool>|<model>|<outcome>`` (a terminal status: ``finish-5.lua``, ``cancel-6.lua``,
  ``claim-13.lua`` for ``expired``, ``reclaim-6.lua`` for a poison job), and
  ``redelivered|<pool>`` (a lease that lapsed with its worker, ``reclaim-6.lua``).
- ``metrics:tokens`` (``KeySpace.metrics_tokens``): ``prompt|<model>|<tenant>``,
  ``completion|<model>|<tenant>`` and ``cost|<model>|<tenant>``, the cost in whole nano-USD
  (integers add up exactly whatever the order of the additions; summed floats do not).

Pool, class and tenant names cannot hold ``|`` (config validates them), a model alias might: the
model is therefore always read as what lies between the names that cannot.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

NANO_USD = 1_000_000_000
"""``cost|…`` fields count nano-USD: this many make a dollar."""


class JobCounter(enum.StrEnum):
    """The prelude's ``COUNTER`` table: the kinds of ``metrics:jobs`` fields."""

    SUBMITTED = "submitted"
    STARTED = "started"
    FINISHED = "finished"
    REDELIVERED = "redelivered"


class TokenKind(enum.StrEnum):
    """The prelude's ``TOKENS`` table: the kinds of ``metrics:tokens`` fields."""

    PROMPT = "prompt"
    COMPLETION = "completion"
    COST = "cost"


def counter_field(kind: JobCounter | TokenKind, *parts: str) -> str:
    """A field as ``count`` in ``lua/_lib.lua`` names it (for tests and tools)."""
    return "|".join([kind.value, *parts])


@dataclass(frozen=True, slots=True)
class JobCounts:
    submitted: dict[tuple[str, str, str], int] = field(default_factory=dict)
    """By (pool, class, model)."""
    started: dict[tuple[str, str], int] = field(default_factory=dict)
    """By (pool, model)."""
    finished: dict[tuple[str, str, str], int] = field(default_factory=dict)
    """By (pool, model, outcome)."""
    redelivered: dict[str, int] = field(default_factory=dict)
    """By pool."""


@dataclass(frozen=True, slots=True)
class TokenCounts:
    tokens: dict[tuple[str, str, TokenKind], int] = field(default_factory=dict)
    """By (model, tenant, ``PROMPT`` or ``COMPLETION``)."""
    cost_nano_usd: dict[tuple[str, str], int] = field(default_factory=dict)
    """By (model, tenant)."""


def _fields(raw: Mapping[str, str]) -> Iterator[tuple[str, str, int]]:
    """A counter hash's fields as (kind, the rest of the name, count); a value that is not an
    integer (written by another version) is left out."""
    for name, value in raw.items():
        try:
            n = int(value)
        except ValueError:
            continue
        kind, _, rest = name.partition("|")
        yield kind, rest, n


def decode_job_counts(raw: Mapping[str, str]) -> JobCounts:
    """``metrics:jobs`` as HGETALL returns it; a field this version cannot read is left out."""
    counts = JobCounts()
    for kind, rest, n in _fields(raw):
        if kind == JobCounter.SUBMITTED:
            pool, _, tail = rest.partition("|")
            cls, sep, model = tail.partition("|")
            if sep:
                counts.submitted[(pool, cls, model)] = n
        elif kind == JobCounter.STARTED:
            pool, sep, model = rest.partition("|")
            if sep:
                counts.started[(pool, model)] = n
        elif kind == JobCounter.FINISHED:
            pool, _, tail = rest.partition("|")
            model, sep, outcome = tail.rpartition("|")
            if sep:
                counts.finished[(pool, model, outcome)] = n
        elif kind == JobCounter.REDELIVERED and rest:
            counts.redelivered[rest] = n
    return counts


def decode_token_counts(raw: Mapping[str, str]) -> TokenCounts:
    """``metrics:tokens`` as HGETALL returns it; a field this version cannot read is left out."""
    counts = TokenCounts()
    for kind, rest, n in _fields(raw):
        model, sep, tenant = rest.rpartition("|")
        if not sep:
            continue
        if kind in (TokenKind.PROMPT, TokenKind.COMPLETION):
            counts.tokens[(model, tenant, TokenKind(kind))] = n
        elif kind == TokenKind.COST:
            counts.cost_nano_usd[(model, tenant)] = n
    return counts
