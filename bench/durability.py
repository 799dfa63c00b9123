"""What strict durability costs: ``appendfsync everysec`` (``redis.durability: standard``) against
``appendfsync always`` (``strict``), on the same machine and disk, in one run.

    python bench/durability.py            # 3 interleaved repetitions (~3 min)
    python bench/durability.py --reps 5   # the README's run (~4 min)
    python bench/durability.py --quick    # shorter measurements (~1 min)

Two private redis-servers run side by side, their data directories in one temp dir (one disk),
each with an API process configured for its mode. Each repetition measures every scenario in
both modes back to back, the order alternating from one repetition to the next, so that a slow
patch of the shared machine hits both alike:

- ``POST /v1/jobs`` at 64 connections (wrk) into a pool no worker serves: submits/s and the
  202's latency, which in strict mode includes the fsync;
- the broker alone: a bulk enqueue (pipelined, from this process), the drain of a backlog of
  no-op jobs by one worker process (``noop_worker.py``, concurrency 64), and single jobs one at
  a time, enqueue → result, which in strict mode includes the barrier an API process waits for
  before it tells a client (``broker/durability.py``).

Automatic AOF rewrites are switched off on both servers so that none lands in one mode's
measurement only. Prints medians (min to max) and the ratio always ÷ everysec, both of the
medians and as the median of each repetition's own ratio (the steadier one when the machine's
load drifts), with Redis's own record of slow AOF writes and fsyncs, and writes
``bench/results/durability-<day>[-HHMMSS].json``. Needs ``wrk`` like ``run.py``.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import broker_bench
import click
import redis
import report
import uvloop
from loadgen import wrk
from scenarios import SUBMIT, Durations
from stack import KEY, Stack

from anygate.ops.embedded_redis import AppendFsync, EmbeddedRedis
from anygate.ops.processes import free_port

HERE = Path(__file__).resolve().parent
SETTLE_S = 1.0
LATENCY_MS = 20
"""Redis logs every AOF write or fsync slower than this (its latency monitor)."""
Sample = tuple[dict[str, float], dict[str, Any]]
"""A measurement's figures, and its raw record for the results file."""
MODES: dict[AppendFsync, str] = {"everysec": "standard", "always": "strict"}
RATIO = (("always", "everysec"),)
RATIO_KEY = "always_over_everysec"
FIGURES = [
    ("submit_rps", "POST /v1/jobs submits/s, 64 conns", "jobs/s"),
    ("submit_p50_ms", "POST /v1/jobs latency p50, 64 conns", "ms"),
    ("submit_p99_ms", "POST /v1/jobs latency p99, 64 conns", "ms"),
    ("enqueue_jobs_s", "broker bulk enqueue (pipelined)", "jobs/s"),
    ("drain_jobs_s", "broker drain, no-op jobs, 1 worker process", "jobs/s"),
    ("round_trip_p50_ms", "single-job submit → result p50", "ms"),
    ("round_trip_p99_ms", "single-job submit → result p99", "ms"),
    ("redis_cpu_us_per_job", "Redis CPU per drained job", "µs"),
]


def _filesystem(path: Path) -> str:
    """The mount (device, type) that holds ``path``: both servers' AOFs share it."""
    best = ("?", "?", "")
    for line in Path("/proc/mounts").read_text().splitlines():
        device, mount, kind = line.split()[:3]
        if str(path).startswith(mount) and len(mount) >= len(best[2]):
            best = (device, kind, mount)
    return f"{best[0]} ({best[1]}) at {best[2]}"


def _settle() -> None:
    """Start each measurement with no dirty pages left by the one before: on ext4 a big
    writeback of one server's AOF slows the other's fsyncs (one journal), which would charge
    everysec's cost to always."""
    os.sync()
    time.sleep(SETTLE_S)


def _stalls(server: EmbeddedRedis) -> dict[str, dict[str, int]]:
    """Redis's own record of its slow AOF writes and fsyncs (``LATENCY HISTORY``, events over
    ``LATENCY_MS``): under ``always`` every client waits for a slow fsync, so a disk that
    stalls shows in the submit latency's tail."""
    out: dict[str, dict[str, int]] = {}
    with redis.Redis.from_url(server.url) as client:
        for event in ("aof-fsync-always", "aof-write", "aof-write-active-child"):
            history = client.execute_command("LATENCY", "HISTORY", event)
            if history:
                worst = [int(ms) for _t, ms in history]
                out[event] = {"count": len(worst), "max_ms": max(worst)}
    return out


def _submits(stack: Stack, fsync: AppendFsync, d: Durations, work: Path, rep: int) -> Sample:
    sub = wrk(
        stack.api_url + "/v1/jobs",
        SUBMIT,
        KEY,
        conns=64,
        seconds=d.submit_s,
        threads=d.wrk_threads,
        work=work,
    )
    figures = {
        "submit_rps": sub["rps"],
        "submit_p50_ms": sub["p50_ms"],
        "submit_p99_ms": sub["p99_ms"],
    }
    return figures, sub


def _enqueue(stack: Stack, fsync: AppendFsync, n: int, rep: int) -> Sample:
    bulk = uvloop.run(broker_bench.bulk_enqueue(stack.redis_url, f"bulk-{fsync}-{rep}", n))
    return {"enqueue_jobs_s": bulk["jobs_per_s"]}, bulk


def _drain(stack: Stack, fsync: AppendFsync, n: int, samples: int, work: Path, rep: int) -> Sample:
    drain = uvloop.run(
        broker_bench.drain_and_round_trip(
            stack.redis_url, f"drain-{fsync}-{rep}", work, n, 64, samples, MODES[fsync]
        )
    )
    figures = {
        key: drain[key]
        for key in ("round_trip_p50_ms", "round_trip_p99_ms", "redis_cpu_us_per_job")
    }
    return {"drain_jobs_s": drain["jobs_per_s"], **figures}, drain


def _aggregate(samples: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, Any]]:
    return report.side_by_side(samples, list(FIGURES), RATIO)


def _table(figures: dict[str, dict[str, Any]]) -> str:
    rows = [
        "| figure | everysec (standard) | always (strict) | always ÷ everysec: of the medians"
        " / median of paired repetitions |",
        "|---|---:|---:|---:|",
    ]
    for key, label, unit in FIGURES:
        f = figures[key]
        cells = []
        for fsync in MODES:
            cells.append(report.median_cell(f[fsync], unit))
        ratio = f[RATIO_KEY]
        ratios = f"{ratio['of_medians']:.2f} / {ratio['paired_median']:.2f}"
        rows.append(f"| {label} | {cells[0]} | {cells[1]} | {ratios} |")
    return "\n".join(rows)


def _results_path() -> Path:
    directory = HERE / "results"
    directory.mkdir(parents=True, exist_ok=True)
    day = time.strftime("%Y-%m-%d", time.gmtime())
    path = directory / f"durability-{day}.json"
    if path.exists():
        path = directory / f"durability-{day}-{time.strftime('%H%M%S', time.gmtime())}.json"
    return path


@click.command()
@click.option("--quick", is_flag=True, help="Shorter measurements and smaller N.")
@click.option("--reps", type=click.IntRange(1, 20), default=3, show_default=True)
@click.option("--submit-seconds", type=float, help="wrk duration per mode [8; quick 2]")
@click.option("--bulk-jobs", type=int, help="jobs bulk-enqueued per mode [20000; quick 5000]")
@click.option("--drain-jobs", type=int, help="backlog drained per mode [20000; quick 5000]")
@click.option("--samples", type=int, help="single-job round trips per mode [300; quick 100]")
@click.option("--out", type=click.Path(path_type=Path), help="[bench/results/durability-…]")
def main(**o: Any) -> None:
    """Strict durability's cost: everysec vs always, interleaved; table and JSON."""
    quick = o["quick"]
    d = Durations(
        latency_s=0,
        throughput_s=0,
        sse_samples=0,
        wrk_threads=1,
        submit_s=o["submit_seconds"] or (2 if quick else 8),
    )
    sizes = (
        o["bulk_jobs"] or (5000 if quick else 20_000),
        o["drain_jobs"] or (5000 if quick else 20_000),
        o["samples"] or (100 if quick else 300),
    )
    samples: dict[str, dict[str, list[float]]] = {m: defaultdict(list) for m in MODES}
    runs: list[dict[str, Any]] = []
    t_start = time.time()
    with tempfile.TemporaryDirectory(prefix="anygate-durability-") as tmp:
        work = Path(tmp)
        servers = {m: EmbeddedRedis(work / f"redis-{m}", appendfsync=m) for m in MODES}
        stacks: dict[AppendFsync, Stack] = {}
        try:
            for fsync, server in servers.items():
                server.start()
                with redis.Redis.from_url(server.url) as client:
                    client.config_set("auto-aof-rewrite-percentage", 0)
                    client.config_set("latency-monitor-threshold", LATENCY_MS)
                stacks[fsync] = stack = Stack(server.url, f"dur{fsync}", work)
                stack.durability = MODES[fsync]
                stack.start_api(free_port())
                wrk(
                    stack.api_url + "/v1/jobs",
                    SUBMIT,
                    KEY,
                    conns=8,
                    seconds=1,
                    threads=1,
                    work=work,
                )  # warm-up: pools, lazy imports, scripts
            bulk_n, drain_n, round_trips = sizes
            scenarios: list[tuple[str, Callable[[AppendFsync, int], Sample]]] = [
                ("submit", lambda m, r: _submits(stacks[m], m, d, work, r)),
                ("enqueue", lambda m, r: _enqueue(stacks[m], m, bulk_n, r)),
                ("drain", lambda m, r: _drain(stacks[m], m, drain_n, round_trips, work, r)),
            ]
            for rep in range(o["reps"]):
                # Both modes back to back per scenario, in alternating order.
                order = list(MODES) if rep % 2 == 0 else list(reversed(MODES))
                for name, measure in scenarios:
                    for fsync in order:
                        _settle()
                        found, raw = measure(fsync, rep)
                        runs.append({"rep": rep, "appendfsync": fsync, name: raw})
                        for key, value in found.items():
                            samples[fsync][key].append(value)
                        shown = ", ".join(f"{k} {v:,.2f}" for k, v in found.items())
                        print(f"[durability] rep {rep + 1} {fsync}: {shown}", flush=True)
            with redis.Redis.from_url(servers["always"].url) as client:
                version = client.info("server")
            stalls = {m: _stalls(server) for m, server in servers.items()}
        finally:
            for stack in stacks.values():
                stack.close()
            for server in servers.values():
                server.stop()
        disk = _filesystem(work)
    figures = _aggregate(samples)
    document = {
        "summary": {
            key: {m: figures[key][m]["median"] for m in MODES}
            | {
                "ratio": figures[key][RATIO_KEY]["of_medians"],
                "paired_ratio": figures[key][RATIO_KEY]["paired_median"],
            }
            for key, _l, _u in FIGURES
        },
        "figures": figures,
        "stalls": stalls,
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "redis": version["redis_version"],
            "disk": disk,
            "platform": platform.platform(),
        },
        "meta": {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_start)),
            "wall_s": round(time.time() - t_start, 1),
            "reps": o["reps"],
            "quick": quick,
            "submit_s": d.submit_s,
            "bulk_jobs": sizes[0],
            "drain_jobs": sizes[1],
            "round_trip_samples": sizes[2],
        },
        "runs": runs,
    }
    path = o["out"] or _results_path()
    report.write(path, document)
    click.echo("\n" + _table(figures))
    for fsync, events in stalls.items():
        shown = (
            "; ".join(
                f"{e}: {v['count']} s with one, worst {v['max_ms']} ms" for e, v in events.items()
            )
            or "none"
        )
        click.echo(f"AOF writes and fsyncs over {LATENCY_MS} ms, {fsync}: {shown}")
    click.echo(
        f"\nRedis {version['redis_version']}, AOFs on {disk}; wall "
        f"{document['meta']['wall_s']} s; written to {path}"
    )


if __name__ == "__main__":
    main()
