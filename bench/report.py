"""Figures, docs/performance.md targets, the printed table and the results file.

A figure is the median of its repetitions, with the lowest and highest next to it: on a shared
2-core machine the spread is part of the result, and a target "met" by a median whose range
straddles it is worth knowing about.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str
    op: str | None = None  # "<=" or ">="
    target: float | None = None
    summary: bool = True  # one of the exact keys of the results file's `summary`

    def met(self, value: float | None) -> bool | None:
        return meets(value, self.op, self.target)


def meets(value: float | None, op: str | None, target: float | None) -> bool | None:
    """Whether ``value`` meets ``op target`` ("<=" or ">="); None when there is nothing to
    judge. Every table of bench/ judges its figures by this."""
    if value is None or op is None or target is None:
        return None
    return value <= target if op == "<=" else value >= target


VERDICT = {True: "met", False: "MISSED", None: ""}
"""A table's last column, from ``meets``."""


MIB_150MB = 150e6 / 2**20  # docs/performance.md says 150 MB; the figure is in MiB
FIGURES = [
    Figure("added_latency_p50_ms", "(a) added latency p50, sync c=1", "ms", "<=", 1.0),
    Figure("added_latency_p99_ms", "(a) added latency p99, sync c=1", "ms", "<=", 4.0),
    Figure("added_ttfc_p50_ms", "(b) added time to first chunk p50", "ms", "<=", 1.5),
    Figure("added_stream_total_p50_ms", "(b) added total stream time p50", "ms", summary=False),
    Figure("throughput_rps", "(c) non-streamed req/s, 64 conns", "req/s", ">=", 1500),
    Figure("stream_rps", "(c) streamed resp/s, 64 conns", "resp/s", ">=", 600),
    Figure("submit_rps", "(d) /v1/jobs submits/s, 64 conns", "jobs/s", ">=", 5000),
    Figure("bulk_enqueue_50k_s", "(e) 50,000-job bulk enqueue", "s", "<=", 10.0),
    Figure("batch_50k_enqueued_s", "(h) 50,000-line batch, upload to enqueued", "s", "<=", 10),
    Figure("broker_drain_jobs_s", "(f) broker drain, no-op jobs", "jobs/s", ">=", 5000),
    Figure("round_trip_p50_ms", "(f) submit→result round trip p50", "ms", "<=", 1.0, False),
    Figure("redis_overhead_bytes_per_job", "(g) Redis bytes/job over payload", "B", "<=", 512),
    Figure(
        "worker_rss_mib_1000_inflight", "(g) worker RSS, 1,000 in flight", "MiB", "<=", MIB_150MB
    ),
    Figure(
        "waiter_wake_p99_ms", "(w) job end → answer p99, 1,000 polls + 1,000 SSE", "ms", "<=", 50
    ),
]
SUMMARY_KEYS = [f.key for f in FIGURES if f.summary]
PEER_KEYS = ["added_latency_p50_ms", "added_latency_p99_ms", "throughput_rps", "stream_rps"]
DECIMALS = {"ms": 2, "s": 2, "MiB": 1, "cores": 2}


def number(value: float | None, decimals: int) -> str:
    """A figure as the tables print it: thousands separated, "n/a" when absent."""
    return "n/a" if value is None else f"{value:,.{decimals}f}"


def fmt(value: float | None, unit: str) -> str:
    return number(value, DECIMALS.get(unit, 0))


def aggregate(samples: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    """Median, min and max of every figure's repetitions, with its target and verdict."""
    out: dict[str, dict[str, Any]] = {}
    for fig in FIGURES:
        values = samples.get(fig.key, [])
        median = statistics.median(values) if values else None
        out[fig.key] = {
            "median": median,
            "min": min(values, default=None),
            "max": max(values, default=None),
            "n": len(values),
            "unit": fig.unit,
            "values": values,
            "target": None if fig.op is None else f"{fig.op} {fig.target:g}",
            "met": fig.met(median),
        }
    return out


def median_cell(m: dict[str, Any], unit: str) -> str:
    """``median unit (min to max)`` of one configuration's figure, as the side-by-side tables
    print it."""
    spread = f"{fmt(m['min'], unit)} to {fmt(m['max'], unit)}"
    return f"{fmt(m['median'], unit)} {unit} ({spread})"


def side_by_side(
    samples: dict[str, dict[str, list[float]]],
    figures: list[tuple[str, str, str]],
    ratios: tuple[tuple[str, str], ...],
) -> dict[str, dict[str, Any]]:
    """Configurations measured in one run, figure by figure: each one's median, min and max,
    and each ratio ``top ÷ bottom`` both of the medians and as the median of every repetition's
    own ratio (measured back to back, a slow patch of the shared machine mostly cancels out of
    it). ``figures``: (key, label, unit); ``samples``: configuration → key → repetitions."""
    out: dict[str, dict[str, Any]] = {}
    for key, _label, unit in figures:
        row: dict[str, Any] = {"unit": unit}
        for config, values_by_key in samples.items():
            values = values_by_key[key]
            row[config] = {
                "median": statistics.median(values),
                "min": min(values),
                "max": max(values),
                "values": values,
            }
        for top, bottom in ratios:
            paired = [t / b for t, b in zip(samples[top][key], samples[bottom][key], strict=True)]
            row[f"{top}_over_{bottom}"] = {
                "of_medians": row[top]["median"] / row[bottom]["median"],
                "paired_median": statistics.median(paired),
                "paired": paired,
            }
        out[key] = row
    return out


def summary(
    figures: dict[str, dict[str, Any]], peers: dict[str, dict[str, float]], machine: dict[str, Any]
) -> dict[str, Any]:
    """The results file's ``summary``: exactly the keys of docs/performance.md, then ``peers`` and
    ``machine``."""
    out: dict[str, Any] = {key: figures[key]["median"] for key in SUMMARY_KEYS}
    out["peers"] = peers
    out["machine"] = machine
    return out


def table(figures: dict[str, dict[str, Any]], errors: dict[str, int]) -> str:
    rows = [
        "| figure | median | min to max | n | target | |",
        "|---|---:|---:|---:|---|---|",
    ]
    for fig in FIGURES:
        f = figures[fig.key]
        if not f["n"]:
            continue  # scenario not run (--scenarios)
        unit = fig.unit
        target = "" if fig.op is None else f"{fig.op} {fmt(fig.target, unit)} {unit}"
        verdict = VERDICT[f["met"]]
        if errors.get(fig.key):
            verdict += f" ({errors[fig.key]} errors)"
        spread = f"{fmt(f['min'], unit)} to {fmt(f['max'], unit)}"
        rows.append(
            f"| {fig.label} | {fmt(f['median'], unit)} {unit} | {spread} | {f['n']} | {target} "
            f"| {verdict} |"
        )
    return "\n".join(rows)


def peer_table(peers: dict[str, dict[str, float]]) -> str:
    rows = [
        "| peer | added p50 ms | added p99 ms | req/s (64 conns) | stream resp/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, values in peers.items():
        cells = [fmt(values.get(k), "ms" if k.endswith("_ms") else "") for k in PEER_KEYS]
        rows.append(f"| {name} | {' | '.join(cells)} |")
    return "\n".join(rows)


def results_path(directory: Path, prefix: str = "") -> Path:
    """``<prefix><YYYY-MM-DD>.json`` (UTC); a second run the same day gets ``-HHMMSS``, never
    overwrites."""
    directory.mkdir(parents=True, exist_ok=True)
    day = time.strftime("%Y-%m-%d", time.gmtime())
    path = directory / f"{prefix}{day}.json"
    if path.exists():
        path = directory / f"{prefix}{day}-{time.strftime('%H%M%S', time.gmtime())}.json"
    return path


def write(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2) + "\n")
