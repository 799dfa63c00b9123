"""The headline: every same-run ratio docs/performance.md sets a target for, in one table.

A run of ``run.py --peers --queue-peers`` measures anygate beside Portkey (peerbench), beside
BullMQ (queuebench), its waiting clients (scenario w) and its Redis CPU per job (redis_cost.py).
Each of those prints its own detailed table; this module gathers the figures that carry a target
into one table and into the results file's ``summary`` under fixed keys, with the absolute
figures they are made of beside them (machines differ 2-4x from one day to the next: the ratio
is the target, the absolutes are the record).

Pure: it reads the summaries the other modules produce and never runs anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from queue_peers import ANYGATE, BULLMQ, RATIO_MODE
from report import VERDICT, meets, number

PORTKEY = "portkey"


@dataclass(frozen=True)
class Headline:
    key: str
    label: str
    op: str  # "<=" or ">="
    target: float
    unit: str = "x"

    def met(self, value: float | None) -> bool | None:
        return meets(value, self.op, self.target)


@dataclass(frozen=True)
class PeerRatio:
    """anygate's peerbench figure ÷ Portkey's, both from the same run."""

    headline: Headline
    figure: str  # a key of ``peers.peer_summary``'s per-target mapping
    unit: str


PEER_RATIOS = (
    PeerRatio(
        Headline("ratio_tput_vs_portkey", "sync chat req/s (64 conns), anygate ÷ Portkey", ">=", 3),
        "throughput_rps",
        "req/s",
    ),
    PeerRatio(
        Headline("ratio_stream_vs_portkey", "streams/s (20 chunks), anygate ÷ Portkey", ">=", 2),
        "stream_rps",
        "resp/s",
    ),
    PeerRatio(
        Headline("added_p50_vs_portkey", "added latency p50 (c=1), anygate ÷ Portkey", "<=", 1),
        "added_latency_p50_ms",
        "ms",
    ),
    PeerRatio(
        Headline("added_p99_vs_portkey", "added latency p99 (c=1), anygate ÷ Portkey", "<=", 0.5),
        "added_latency_p99_ms",
        "ms",
    ),
)
QUEUE_RATIOS = (
    Headline("drain_vs_bullmq", "broker drain jobs/s, anygate ÷ BullMQ c32 (AOF)", ">=", 3),
    Headline("round_trip_vs_bullmq", "round trip p50, anygate ÷ BullMQ c32 (AOF)", "<=", 0.5),
)
WAITERS = Headline(
    "waiter_wake_p99_ms", "job end → waiter's answer p99, 1,000 polls + 1,000 SSE", "<=", 50, "ms"
)
REDIS_CPU = Headline(
    "redis_cpu_us_per_job", "Redis CPU per non-streamed job, whole life", "<=", 30, "µs"
)
HEADLINES = (*(p.headline for p in PEER_RATIOS), *QUEUE_RATIOS, WAITERS, REDIS_CPU)
KEYS = tuple(h.key for h in HEADLINES)


@dataclass(frozen=True)
class Row:
    headline: Headline
    value: float | None
    basis: str  # the absolute figures the value is made of, or why there is none
    errors: int = 0  # measurements that failed: a figure of the survivors meets no target

    def met(self) -> bool | None:
        return False if self.errors else self.headline.met(self.value)


def peer_rows(peers: dict[str, dict[str, float]]) -> list[Row]:
    """The four Portkey ratios from ``summary.peers`` (medians of each target's repetitions)."""
    rows: list[Row] = []
    for ratio in PEER_RATIOS:
        mine = peers.get(ANYGATE, {}).get(ratio.figure)
        theirs = peers.get(PORTKEY, {}).get(ratio.figure)
        if mine is None or theirs is None or theirs <= 0:
            why = "not run (--peers)" if not peers else "a side has no figure"
            rows.append(Row(ratio.headline, None, why))
            continue
        decimals = 2 if ratio.unit == "ms" else 0
        basis = f"{number(mine, decimals)} vs {number(theirs, decimals)} {ratio.unit}"
        rows.append(Row(ratio.headline, mine / theirs, basis))
    return rows


def queue_rows(block: dict[str, Any]) -> list[Row]:
    """drain and round-trip ratios from ``queue_peers.queue_summary``'s block (AOF everysec)."""
    rows: list[Row] = []
    ratios = block.get("ratios", {}).get(RATIO_MODE, {}) if block else {}
    figures = block.get("figures", {}).get(RATIO_MODE, {}) if block else {}
    fields = {
        "drain_vs_bullmq": ("drain_jobs_s", "jobs/s", 0),
        "round_trip_vs_bullmq": ("rt_p50_ms", "ms", 2),
    }
    for headline in QUEUE_RATIOS:
        found = ratios.get(headline.key)
        if found is None:
            rows.append(Row(headline, None, "not run (--queue-peers)"))
            continue
        field, unit, decimals = fields[headline.key]
        mine = figures.get(ANYGATE, {}).get(field, {}).get("median")
        theirs = figures.get(BULLMQ, {}).get(field, {}).get("median")
        basis = (
            f"{number(mine, decimals)} vs {number(theirs, decimals)} {unit}; per-rep median "
            f"{number(found.get('paired_median'), 2)}"
        )
        rows.append(Row(headline, found.get("of_medians"), basis))
    return rows


def waiter_row(figure: dict[str, Any] | None, errors: int = 0) -> Row:
    """Scenario (w)'s p99 (median of repetitions) from ``report.aggregate``'s figures;
    ``errors``: waiters answered 503 or whose stream ended early, over every repetition."""
    if not figure or not figure.get("n"):
        return Row(WAITERS, None, "not run (--waiters)")
    basis = f"{number(figure['min'], 1)} to {number(figure['max'], 1)} ms over {figure['n']} reps"
    if errors:
        basis += f"; {errors:,} waiters failed"
    return Row(WAITERS, figure["median"], basis, errors)


def redis_cpu_row(cost: dict[str, Any] | None) -> Row:
    """redis_cost.py's non-streamed job beside raw streams' floor in the same run."""
    if not cost:
        return Row(REDIS_CPU, None, "not run (--redis-cost)")
    s = cost["summary"]
    floor = number(s["floor_cpu_us_per_job"], 1)
    basis = f"raw streams' floor {floor} µs ({s['ratio_vs_floor']:.1f}x it)"
    return Row(REDIS_CPU, s["redis_cpu_us_per_job"], basis)


def rows(
    peers: dict[str, dict[str, float]],
    queue_block: dict[str, Any],
    waiters: dict[str, Any] | None,
    cost: dict[str, Any] | None,
    waiter_errors: int = 0,
) -> list[Row]:
    return [
        *peer_rows(peers),
        *queue_rows(queue_block),
        waiter_row(waiters, waiter_errors),
        redis_cpu_row(cost),
    ]


def summary(found: list[Row]) -> dict[str, float | None]:
    """The ``summary`` keys, each None when its part was not run."""
    return {row.headline.key: row.value for row in found}


def table(found: list[Row]) -> str:
    lines = [
        "| target (same run) | key | value | made of | target | |",
        "|---|---|---:|---|---|---|",
    ]
    for row in found:
        h = row.headline
        decimals = 1 if h.unit in ("ms", "µs") else 2
        value = "n/a" if row.value is None else f"{row.value:,.{decimals}f} {h.unit}"
        verdict = VERDICT[row.met()]
        target = f"{h.op} {h.target:g} {h.unit}"
        lines.append(f"| {h.label} | `{h.key}` | {value} | {row.basis} | {target} | {verdict} |")
    return "\n".join(lines)
