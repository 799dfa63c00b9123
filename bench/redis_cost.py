"""Redis CPU per job over its whole life, per script, beside raw streams' floor in the same run.

    python bench/redis_cost.py                       # 20,000 jobs per drain, 3 repetitions
    python bench/redis_cost.py --quick               # 3,000 jobs, 2 repetitions
    python bench/redis_cost.py --against main        # also a baseline checkout, interleaved
    python bench/redis_cost.py --against A --against B   # several: each cut against the last

Against a private redis-server (the system one if installed, AOF everysec, as every bench here),
each repetition measures, one after the other, on a flushed Redis: raw streams' floor (XADD
pipelined 1,000 per round trip, XREADGROUP COUNT 100, XACK per batch), then non-streamed and
streamed (20 chunks) no-op jobs, each enqueued through ``Broker`` and drained by one real
``noop_worker.py`` process (``redis_cost_runs.py``). Redis CPU per job is ``INFO cpu``'s
main-thread time over the whole life, net of Redis's idle ticks; per script, a separate smaller
drain with ``SLOWLOG`` logging every command gives calls and µs per call (``EVALSHA`` resolved
to its script by SHA, ``redis_accounting.attribute``; on Redis 7 the commands a script runs are
logged too, inside their script's time, and counted apart). ``--against REF`` (repeatable): the
same measurements of ``git archive REF`` run interleaved with the current tree's, so a change to
a script is measured against its baseline on the same machine in the same minutes (streamed jobs
and the per-script drain: the first ref only, the baseline; later refs are the steps between).

Prints a table per kind and writes ``bench/results/redis-cost-<day>.json``, whose
``redis_cpu_us_per_job`` is the median Redis CPU µs of a non-streamed job.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import click
import redis
import report
from run import _git_state, _keep_logs, _on_sigterm, _redis_version

from anygate.ops.embedded_redis import EmbeddedRedis

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PACKAGES = ("broker", "workers", "core", "api", "client", "config", "telemetry", "ops")
"""The folders ``anygate.<name>`` maps onto (pyproject's ``package-dir``)."""
KINDS = ("floor", "plain", "stream")
TARGET_US = 30.0


def checkout(ref: str, into: Path) -> Path:
    """``git archive REF`` unpacked, and a ``site`` folder whose ``anygate/<pkg>`` links to it:
    first on a child's ``PYTHONPATH``, it shadows the editable install (its finder comes last)."""
    tree = into / "tree"
    tree.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref],
        capture_output=True,
        check=True,
        timeout=60,
    )
    tar_path = into / "tree.tar"
    tar_path.write_bytes(archive.stdout)
    with tarfile.open(tar_path) as tar:
        tar.extractall(tree, filter="data")
    site = into / "site" / "anygate"
    site.mkdir(parents=True)
    for name in PACKAGES:
        (site / name).symlink_to(tree / name)
    return into / "site"


def _flush(url: str) -> None:
    """An empty Redis for each measurement (no repetition pays for another's keys), once no AOF
    rewrite runs."""
    client = redis.Redis.from_url(url)
    try:
        client.flushall()
        for _ in range(400):
            info = cast(dict[str, Any], client.info("persistence"))
            if not (info["aof_rewrite_in_progress"] or info["aof_rewrite_scheduled"]):
                break
            time.sleep(0.05)
    finally:
        client.close()


def _idle_us_per_s(url: str, seconds: float = 2.0) -> float:
    client = redis.Redis.from_url(url)
    try:

        def cpu() -> float:
            info = cast(dict[str, Any], client.info("cpu"))
            return float(info["used_cpu_user_main_thread"]) + float(
                info["used_cpu_sys_main_thread"]
            )

        c0, t0 = cpu(), time.perf_counter()
        time.sleep(seconds)
        return (cpu() - c0) * 1e6 / (time.perf_counter() - t0)
    finally:
        client.close()


@dataclass(frozen=True)
class Run:
    """One measurement's place: the kind, the Redis, a fresh namespace, and the tree whose code
    runs (``site``: a baseline's ``checkout``; None: the current tree)."""

    kind: str
    url: str
    namespace: str
    work: Path
    idle_us_per_s: float
    site: Path | None


def measure(run: Run, jobs: int, attribute: int) -> dict[str, Any]:
    env = dict(os.environ)
    if run.site is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(run.site), str(HERE)])
    argv = [sys.executable, str(HERE / "redis_cost_runs.py"), run.kind, run.url, run.namespace]
    argv += [str(jobs), str(run.work), repr(run.idle_us_per_s), str(attribute)]
    done = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=600 + jobs / 100, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{run.kind} ({run.namespace}) failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def spread(values: list[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "values": values,
    }


def saving(samples: dict[str, list[dict[str, Any]]], ref: str) -> dict[str, Any]:
    """The current tree against ``ref``: its Redis CPU per job and what the current tree saves,
    of the medians and as the median of each repetition's own difference (back to back)."""
    out: dict[str, Any] = {}
    for kind in ("plain", "stream"):
        if f"{kind} @{ref}" not in samples:
            continue
        base = [f["cpu_us_per_job"] for f in samples[f"{kind} @{ref}"]]
        now = [f["cpu_us_per_job"] for f in samples[kind]]
        out[kind] = {
            "redis_cpu_us_per_job": statistics.median(base),
            "saving_us_per_job": statistics.median(base) - statistics.median(now),
            "paired_saving_us_per_job": statistics.median(
                b - c for b, c in zip(base, now, strict=True)
            ),
        }
    return out


def script_table(attribution: dict[str, Any], cpu_us: float) -> str:
    """Per script/command: calls, µs per call and per job (SLOWLOG's wall time inside the
    command), its share of that time, and that share of the run's Redis CPU per job."""
    lines = [
        "| script / command | calls/job | µs/call | µs/job | share | ≈ CPU µs/job |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in attribution["rows"]:
        lines.append(
            f"| {row['command']} | {row['calls_per_job']:.3f} | {row['us_per_call']:.1f} | "
            f"{row['us_per_job']:.1f} | {row['share']:.1%} | {row['share'] * cpu_us:.1f} |"
        )
    lines.append(f"| **inside commands** | | | {attribution['command_us_per_job']:.1f} | 100% | |")
    return "\n".join(lines)


def summary_table(cells: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| kind | Redis CPU µs/job, median (min to max) | ÷ floor | jobs/s |",
        "|---|---:|---:|---:|",
    ]
    floor = cells["floor"]["cpu"]["median"]
    for name, cell in cells.items():
        cpu = cell["cpu"]
        lines.append(
            f"| {name} | {cpu['median']:.1f} ({cpu['min']:.1f} to {cpu['max']:.1f}) | "
            f"{cpu['median'] / floor:.1f}x | {cell['jobs_per_s']['median']:,.0f} |"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class Plan:
    jobs: int = 20_000
    attribution_jobs: int = 2000
    reps: int = 3
    refs: tuple[str, ...] = ()
    """Git refs measured beside the current tree (``--against``)."""


def run_all(plan: Plan, logs_to: Path) -> dict[str, Any]:
    """Every measurement of ``plan`` on a private Redis; the results document."""
    t_start = time.time()
    samples: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="anygate-redis-cost-") as tmp:
        work = Path(tmp)
        trees: dict[str, Path | None] = {"": None}
        for n, ref in enumerate(plan.refs):
            trees[f" @{ref}"] = checkout(ref, work / f"baseline{n}")
        with EmbeddedRedis(work / "redis", aof=True) as server:
            version = _redis_version(server.binary)
            idle = _idle_us_per_s(server.url)
            for rep in range(plan.reps):
                for kind in KINDS:
                    for n, (label, site) in enumerate(trees.items()):
                        if (kind == "floor" and n > 0) or (kind == "stream" and n > 1):
                            continue  # the floor is no tree's code; streams: the first ref's
                        _flush(server.url)
                        name = f"{kind}{label}"
                        run = Run(kind, server.url, f"{kind}{rep}t{n}", work, idle, site)
                        attribute = plan.attribution_jobs if rep == 0 and n <= 1 else 0
                        fig = measure(run, plan.jobs, attribute)
                        samples[name].append(fig)
                        print(
                            f"[redis-cost] rep {rep + 1} {name}: "
                            f"{fig['cpu_us_per_job']:.1f} µs/job",
                            flush=True,
                        )
        logs = _keep_logs(work, logs_to)
    cells = {name: cell(figs) for name, figs in samples.items()}
    plain, floor = cells["plain"]["cpu"]["median"], cells["floor"]["cpu"]["median"]
    summary: dict[str, Any] = {
        "redis_cpu_us_per_job": plain,
        "redis_cpu_us_per_streamed_job": cells["stream"]["cpu"]["median"],
        "floor_cpu_us_per_job": floor,
        "ratio_vs_floor": plain / floor,
        "target_us_per_job": TARGET_US,
        "met": plain <= TARGET_US,
        "against": {ref: saving(samples, ref) for ref in plan.refs},
        "machine": {"cores": os.cpu_count(), "redis": version},
    }
    meta = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_start)),
        "wall_s": round(time.time() - t_start, 1),
        "commit": _git_state(),
        "plan": asdict(plan),
        "idle_cpu_us_per_s": idle,
        "logs": str(logs),
    }
    return {"summary": summary, "cells": cells, "meta": meta, "runs": samples}


def cell(figs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("cpu_us_per_job", "process_cpu_us_per_job", "evalsha_us_per_job", "jobs_per_s")
    out: dict[str, Any] = {
        key.removesuffix("_us_per_job"): spread([f[key] for f in figs]) for key in keys
    }
    out["attribution"] = figs[0].get("attribution")
    return out


def tables(document: dict[str, Any]) -> str:
    cells = document["cells"]
    parts = [summary_table(cells)]
    for name, c in cells.items():
        if c["attribution"]:
            parts.append(
                f"{name} (per script, SLOWLOG drain of {c['attribution']['jobs']:,} jobs):"
            )
            parts.append(script_table(c["attribution"], c["cpu"]["median"]))
    return "\n\n".join(parts)


@click.command()
@click.option("--jobs", type=int, help="Jobs per drain [20000; quick 3000].")
@click.option("--attribution-jobs", type=int, help="Jobs of the SLOWLOG drain [2000; quick 500].")
@click.option("--reps", type=click.IntRange(1, 20), help="Repetitions [3; quick 2].")
@click.option("--quick", is_flag=True)
@click.option(
    "--against",
    "refs",
    multiple=True,
    help="Also measure this git ref's tree, interleaved (a baseline); repeatable.",
)
@click.option(
    "--out", type=click.Path(path_type=Path), help="[bench/results/redis-cost-<day>.json]"
)
@click.option("--logs", type=click.Path(path_type=Path), help="Where the process logs are kept.")
def main(**o: Any) -> None:
    """Redis CPU per job, per script, beside raw streams' floor (see redis_cost.py)."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    quick = o["quick"]
    attribution = o["attribution_jobs"]
    plan = Plan(
        jobs=o["jobs"] or (3000 if quick else 20_000),
        attribution_jobs=attribution if attribution is not None else (500 if quick else 2000),
        reps=o["reps"] or (2 if quick else 3),
        refs=tuple(o["refs"]),
    )
    logs = o["logs"] or HERE / "results" / "logs" / time.strftime("%Y%m%d-%H%M%S")
    document = run_all(plan, logs)
    path = o["out"] or report.results_path(HERE / "results", prefix="redis-cost-")
    report.write(path, document)
    click.echo("\n" + tables(document))
    click.echo(f"\nwall {document['meta']['wall_s']} s; written to {path}")


if __name__ == "__main__":
    main()
