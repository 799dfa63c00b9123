"""Same-run queue comparison: the shared queuebench harness with anygate's broker as one more queue.

queuebench (its ``bench.py`` at ``QUEUEBENCH``, stdlib only) is called by path, never copied:
it owns the two Redis servers (AOF off, AOF everysec), the peers (raw redis-py streams, BullMQ,
arq, SAQ …) and the interleaving, and writes ``raw.json``. We add ``queuebench_driver.py`` with
its ``--extra-peer`` and read back, per Redis mode and queue, the medians of the repetitions and
the two ratios docs/performance.md sets targets for:

* ``drain_vs_bullmq``: anygate's drain jobs/s ÷ BullMQ's (concurrency 32), target ≥ 3;
* ``round_trip_vs_bullmq``: anygate's round-trip p50 ÷ BullMQ's, target ≤ 0.5;

both of the AOF everysec medians (anygate's own Redis runs so). Each is also given as the
median of every repetition's own ratio (measured minutes apart, a slow patch of the shared
machine mostly cancels out of it).
"""

from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from report import VERDICT, meets, number

HERE = Path(__file__).resolve().parent
QUEUEBENCH = Path("/work/shared/queuebench/bench.py")
QPEERS = Path(os.environ.get("QPEERS_DIR", "/tmp/qpeers"))  # noqa: S108  (queuebench's default)
SETUP = QUEUEBENCH.with_name("setup.sh")
ANYGATE = "anygate"
BULLMQ = "bullmq-c32"
RAW = "raw-streams"
DEFAULT_TARGETS = f"{RAW},{BULLMQ},arq-poll10ms,saq"
MODES = {"aof": "AOF everysec", "noaof": "AOF off"}
RATIO_MODE = "aof"
FIELDS = ("enqueue_jobs_s", "drain_jobs_s", "rt_p50_ms", "rt_p99_ms")
ANYGATE_COSTS = ("redis_cpu_us_per_job", "worker_cpu_us_per_job", "startup_s")


@dataclass(frozen=True)
class Ratio:
    key: str
    label: str
    field: str
    op: str
    target: float

    def met(self, value: float | None) -> bool | None:
        return meets(value, self.op, self.target)


RATIOS = (
    Ratio("drain_vs_bullmq", "drain jobs/s, anygate ÷ BullMQ c32", "drain_jobs_s", ">=", 3.0),
    Ratio("round_trip_vs_bullmq", "round trip p50, anygate ÷ BullMQ c32", "rt_p50_ms", "<=", 0.5),
)


@dataclass(frozen=True)
class QueueOptions:
    targets: str
    n: int
    samples: int
    repeats: int
    timeout_s: float


def _needs(target: str) -> list[Path]:
    """What queuebench's ``setup.sh`` installs for one of its targets."""
    if target.startswith("bullmq"):
        node = QPEERS / "node" / "node_modules"
        return [node / "bullmq" / "package.json", node / "ioredis" / "package.json"]
    venv = {"raw-streams": "raw"}.get(target, target.split("-", maxsplit=1)[0])
    return [QPEERS / f"venv-{venv}" / "bin" / "python"]


def missing_peers(targets: str) -> list[str]:
    """Everything absent for ``targets`` (empty: ready to run)."""
    out = [] if QUEUEBENCH.exists() else [f"{QUEUEBENCH} (the harness itself)"]
    for target in (t.strip() for t in targets.split(",") if t.strip()):
        out += [f"{path} ({target})" for path in _needs(target) if not path.exists()]
        if target.startswith("bullmq") and shutil.which("node") is None:
            out.append(f"node on PATH ({target})")
    return out


def check_installed(targets: str) -> None:
    missing = missing_peers(targets)
    if missing:
        raise RuntimeError(
            "--queue-peers: queuebench's peers are not installed (run "
            f"{SETUP} once; it installs into {QPEERS}). Missing: " + "; ".join(missing)
        )


def queuebench_argv(opts: QueueOptions, results: Path) -> list[str]:
    driver = shlex.join([sys.executable, str(HERE / "queuebench_driver.py")])
    return [
        shutil.which("python3") or "python3",
        str(QUEUEBENCH),
        "--targets",
        opts.targets,
        "--extra-peer",
        f"{ANYGATE}={driver}",
        "--n",
        str(opts.n),
        "--samples",
        str(opts.samples),
        "--repeats",
        str(opts.repeats),
        "--no-redis-benchmark",
        "--results",
        str(results),
    ]


def run_queuebench(opts: QueueOptions, results: Path) -> dict[str, Any]:
    """Run queuebench to completion (bounded), echoing its progress; return its ``raw.json``."""
    check_installed(opts.targets)
    results.mkdir(parents=True, exist_ok=True)
    argv = queuebench_argv(opts, results)
    print(f"[queue-peers] {shlex.join(argv)}", flush=True)
    proc = subprocess.Popen(argv, start_new_session=True, stdin=subprocess.DEVNULL)
    try:
        proc.wait(timeout=opts.timeout_s)
    except BaseException:
        if proc.poll() is None:  # SIGTERM: queuebench kills its current driver, stops Redis
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"queuebench exited with {proc.returncode}")
    runs = sorted(results.glob("*/raw.json"))
    if not runs:
        raise RuntimeError(f"queuebench wrote no raw.json under {results}")
    raw: dict[str, Any] = json.loads(runs[-1].read_text())
    raw["raw_json"] = str(runs[-1])
    return raw


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not math.isnan(value):  # NaN is no measurement
        return float(value)
    return None


def _spread(values: list[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(values) if values else None,
        "min": min(values, default=None),
        "max": max(values, default=None),
        "values": values,
    }


def _by_rep(runs: list[dict[str, Any]], mode: str, target: str, field: str) -> dict[int, float]:
    found = {}
    for r in runs:
        if r.get("ok") and r.get("mode") == mode and r.get("target") == target:
            value = _number(r.get(field))
            if value is not None:
                found[int(r["rep"])] = value
    return found


def peer_figures(raw: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """mode → queue → field → median, min, max, values (failed runs left out, counted)."""
    runs: list[dict[str, Any]] = raw["results"]
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for mode in MODES:
        targets = list(dict.fromkeys(r["target"] for r in runs if r.get("mode") == mode))
        for target in targets:
            fields = FIELDS + (ANYGATE_COSTS if target == ANYGATE else ())
            mine = [r for r in runs if r.get("mode") == mode and r["target"] == target]
            row: dict[str, Any] = {
                f: _spread(list(_by_rep(runs, mode, target, f).values())) for f in fields
            }
            row["ok_runs"] = sum(1 for r in mine if r.get("ok"))
            row["runs"] = len(mine)
            row["errors"] = [str(r.get("error", ""))[-300:] for r in mine if not r.get("ok")]
            out.setdefault(mode, {})[target] = row
    return out


def ratios(
    raw: dict[str, Any], figures: dict[str, dict[str, dict[str, Any]]]
) -> dict[str, dict[str, Any]]:
    """mode → ratio key → of the medians, and the median of per-repetition ratios."""
    out: dict[str, dict[str, Any]] = {}
    for mode, queues in figures.items():
        for ratio in RATIOS:
            mine, theirs = queues.get(ANYGATE), queues.get(BULLMQ)
            value = paired = None
            if mine and theirs:
                top, bottom = mine[ratio.field]["median"], theirs[ratio.field]["median"]
                if top is not None and bottom:
                    value = top / bottom
                a = _by_rep(raw["results"], mode, ANYGATE, ratio.field)
                b = _by_rep(raw["results"], mode, BULLMQ, ratio.field)
                per_rep = [a[rep] / b[rep] for rep in a if b.get(rep)]
                paired = statistics.median(per_rep) if per_rep else None
            out.setdefault(mode, {})[ratio.key] = {
                "of_medians": value,
                "paired_median": paired,
                "target": f"{ratio.op} {ratio.target:g}",
                "met": ratio.met(value) if mode == RATIO_MODE else None,  # targets: everysec
            }
    return out


def queue_summary(raw: dict[str, Any]) -> tuple[dict[str, float | None], dict[str, Any]]:
    """The results file's ``summary`` keys (AOF everysec ratios) and its ``queue_peers`` block."""
    figures = peer_figures(raw)
    found = ratios(raw, figures)
    keys = {r.key: found.get(RATIO_MODE, {}).get(r.key, {}).get("of_medians") for r in RATIOS}
    block = {
        "figures": figures,
        "ratios": found,
        "meta": raw.get("meta", {}),
        "raw_json": raw.get("raw_json"),
    }
    return keys, block


def _cell(spread: dict[str, Any], decimals: int) -> str:
    if spread["median"] is None:
        return "n/a"
    lo, hi = number(spread["min"], decimals), number(spread["max"], decimals)
    return f"{number(spread['median'], decimals)} ({lo} to {hi})"


def queue_table(block: dict[str, Any]) -> str:
    """Per Redis mode every queue's medians (min to max), then the ratios beside their targets."""
    lines: list[str] = []
    for mode, label in MODES.items():
        queues = block["figures"].get(mode)
        if not queues:
            continue
        lines += [
            f"Redis {label}:",
            "",
            "| queue | enqueue jobs/s | drain jobs/s | RT p50 ms | RT p99 ms | ok runs |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, row in queues.items():
            cells = [_cell(row[f], 2 if f.endswith("_ms") else 0) for f in FIELDS]
            lines.append(f"| {name} | {' | '.join(cells)} | {row['ok_runs']}/{row['runs']} |")
        mine = queues.get(ANYGATE)
        if mine:
            costs = ", ".join(
                f"{k} {number(mine[k]['median'], 2 if k == 'startup_s' else 0)}"
                for k in ANYGATE_COSTS
            )
            lines += ["", f"anygate drain costs (medians): {costs}"]
        lines.append("")
    lines += [
        "| ratio (same run) | Redis | of medians | per-rep median | target | |",
        "|---|---|---:|---:|---|---|",
    ]
    for ratio in RATIOS:
        for mode in (RATIO_MODE, *(m for m in MODES if m != RATIO_MODE)):
            r = block["ratios"].get(mode, {}).get(ratio.key)
            if r is None:
                continue
            verdict = VERDICT[r["met"]]
            lines.append(
                f"| {ratio.key}: {ratio.label} | {MODES[mode]} | {number(r['of_medians'], 2)} | "
                f"{number(r['paired_median'], 2)} | {r['target']} | {verdict} |"
            )
    return "\n".join(lines)
