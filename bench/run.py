"""anygate benchmark (docs/performance.md): one command, a table, and
``bench/results/<YYYY-MM-DD>.json``.

    python bench/run.py              # every scenario, 3 repetitions (~4 min)
    python bench/run.py --quick      # shorter measurements, same scenarios (~1.7 min)
    python bench/run.py --peers      # then peerbench, anygate as one of its targets (+~12 min)
    python bench/run.py --peers --peer-quick   # peerbench --quick (+1.5 min)
    python bench/run.py --redis-cost # then redis_cost.py: Redis CPU per job, per script (+~3 min)

    python bench/run.py --queue-peers   # then queuebench: anygate's broker beside raw redis-py
                                        # streams, BullMQ c32, arq and SAQ (+~15 min)
    python bench/run.py --scenarios '' --queue-peers --queue-n 5000 --queue-repeats 1

    python bench/run.py --peers --queue-peers   # everything: both peer runs, (w) and the
                                                # Redis cost too, then one table of every
                                                # same-run target (headline.py)

``--peers`` needs the peers that ``/work/shared/peerbench/setup.sh`` installs into /tmp/peers;
``--queue-peers`` those that ``/work/shared/queuebench/setup.sh`` installs into /tmp/qpeers (it
stops at once, naming what is missing, when they are not there). queuebench starts its own two
Redis servers (AOF off and AOF everysec) and runs ``queuebench_driver.py`` (anygate's ``Broker``
and a real no-op ``Worker`` process) interleaved with the other queues; ``queue_peers.py`` reads
its ``raw.json`` and writes ``drain_vs_bullmq`` (target >= 3) and ``round_trip_vs_bullmq``
(target <= 0.5), both with AOF everysec, into ``summary``, and every queue's figures under
``summary.queue_peers`` (docs/performance.md#same-run-queue-comparison).

Everything runs on loopback against processes this script starts on free ports (each in its
own session, stopped by its process-group id): a private redis-server with AOF everysec, the
mock provider (no added latency, 20 chunks per stream), the API and one worker process; wrk and
a raw-socket client generate the load. Scenarios (a) to (h) are those of ``report.FIGURES``; the
HTTP ones (a to d) run as one repetition after another, then the broker-only ones (e, f and the
Redis memory part of g), then the worker RSS part of g. A second run on the same UTC day
writes ``<day>-<HHMMSS>.json`` next to the first instead of overwriting it. Scenario (w),
not run by default (``--scenarios w`` or ``--waiters``), is ``waiters.py``: 1,000 long-polls and
1,000 SSE watchers on an API process and a gate worker of their own while their jobs end.

The modules next to this file are imported as top-level modules: running ``python bench/run.py``
puts this directory first on ``sys.path``.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import subprocess
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

import broker_bench
import click
import headline
import peers as peerbench
import queue_peers
import report
import scenarios
import soak
import uvloop
import waiters
from scenarios import Durations
from stack import POOL, Stack

from anygate.ops.embedded_redis import EmbeddedRedis
from anygate.ops.processes import free_port

HERE = Path(__file__).resolve().parent
BULK_JOBS = 50_000
RSS_IN_FLIGHT = 1000


class Collector:
    """Per-repetition values of every figure, raw records of every run, and error counts."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)

    def add(self, scenario: str, rep: int, raw: dict[str, Any], **figures: float) -> None:
        self.runs[scenario].append({"rep": rep, **raw})
        for key, value in figures.items():
            self.samples[key].append(value)
        shown = ", ".join(f"{k} {v:,.2f}" for k, v in figures.items())
        print(f"[bench] rep {rep + 1} {scenario}: {shown}", flush=True)


def _http_phase(
    stack: Stack, d: Durations, which: set[str], reps: int, work: Path, c: Collector
) -> None:
    """(a) to (d) through one API process and one worker (concurrency 64), after a smoke test."""
    worker = stack.start_worker(POOL, 64)
    c.runs["smoke"].append(scenarios.smoke(stack))
    scenarios.warm_up(stack, work)
    for rep in range(reps):
        if "a" in which:
            lat = scenarios.latency_c1(stack, d, work, rep)
            c.errors["added_latency_p50_ms"] += lat["direct"]["errors"] + lat["gateway"]["errors"]
            c.add(
                "a_latency_c1",
                rep,
                lat,
                added_latency_p50_ms=lat["added_p50_ms"],
                added_latency_p99_ms=lat["added_p99_ms"],
            )
        if "b" in which:
            sse = scenarios.stream_c1(stack, d)
            c.add(
                "b_stream_c1",
                rep,
                sse,
                added_ttfc_p50_ms=sse["added_ttfc_p50_ms"],
                added_stream_total_p50_ms=sse["added_total_p50_ms"],
            )
        if "c" in which:
            tput = scenarios.throughput_64(stack, d, work)
            c.errors["throughput_rps"] += tput["plain"]["errors"]
            c.errors["stream_rps"] += tput["stream"]["errors"]
            c.add(
                "c_throughput_64",
                rep,
                tput,
                throughput_rps=tput["plain"]["rps"],
                stream_rps=tput["stream"]["rps"],
            )
        if "d" in which:
            sub = scenarios.submit_64(stack, d, work)
            c.errors["submit_rps"] += sub["errors"]
            c.add("d_submit_64", rep, sub, submit_rps=sub["rps"])
    stack.stop(worker)


def _broker_phase(
    redis_url: str, work: Path, which: set[str], reps: int, jobs: tuple[int, int, int], c: Collector
) -> None:
    """(e), (f) and the Redis part of (g).

    ``jobs``: (drain backlog, no-op worker concurrency, queued jobs for the memory figure).
    """
    for rep in range(reps):
        if "e" in which:
            bulk = uvloop.run(broker_bench.bulk_enqueue(redis_url, f"bulk{rep}", BULK_JOBS))
            c.add("e_bulk_enqueue", rep, bulk, bulk_enqueue_50k_s=bulk["seconds"])
        if "f" in which:
            drain = uvloop.run(
                broker_bench.drain_and_round_trip(
                    redis_url, f"drain{rep}", work, jobs[0], jobs[1], samples=200
                )
            )
            c.add(
                "f_drain",
                rep,
                drain,
                broker_drain_jobs_s=drain["jobs_per_s"],
                round_trip_p50_ms=drain["round_trip_p50_ms"],
            )
        if "g" in which:
            mem = uvloop.run(broker_bench.memory_per_job(redis_url, f"mem{rep}", jobs[2]))
            c.add(
                "g_redis_memory",
                rep,
                mem,
                redis_overhead_bytes_per_job=mem["overhead_bytes_per_job"],
            )


def _batch_phase(stack: Stack, reps: int, c: Collector) -> None:
    """(h) with the control plane and no worker: the batch's jobs only queue."""
    control = stack.start_control()
    for rep in range(reps):
        batch = scenarios.batch_50k(stack)
        c.add("h_batch_50k", rep, batch, batch_50k_enqueued_s=batch["enqueued_s"])
    stack.stop(control)


def _rss_phase(stack: Stack, reps: int, mock_latency_ms: float, c: Collector) -> None:
    for rep in range(reps):
        rss = uvloop.run(scenarios.worker_rss_1000(stack, RSS_IN_FLIGHT, mock_latency_ms))
        if not rss["reached"]:
            c.errors["worker_rss_mib_1000_inflight"] += 1  # RSS read with fewer in flight
        c.add("g_worker_rss", rep, rss, worker_rss_mib_1000_inflight=rss["rss_mib"])


def _redis_cost(
    wanted: bool, quick: bool, reps: int, logs: Path, c: Collector
) -> dict[str, Any] | None:
    """``--redis-cost``: redis_cost.py's measurement on a Redis of its own, in this run."""
    if not wanted:
        return None
    import redis_cost  # noqa: PLC0415 - it imports this module's helpers: not at the top

    plan = redis_cost.Plan(
        jobs=3000 if quick else 20_000, attribution_jobs=500 if quick else 2000, reps=reps
    )
    cost = redis_cost.run_all(plan, logs / "redis-cost")
    c.runs["redis_cost"].append(cost)
    return cost


def _print_cost(cost: dict[str, Any] | None) -> None:
    if cost is not None:
        import redis_cost  # noqa: PLC0415 - as in _redis_cost

        click.echo("\nRedis CPU per job (redis_cost.py, same run):\n\n" + redis_cost.tables(cost))


def _waiters_phase(redis_url: str, work: Path, reps: int, rate: float, c: Collector) -> None:
    """(w) on processes of its own (``waiters.py``), on the same Redis."""
    found = waiters.measure(redis_url, work, 1000, 1000, rate, reps, "")
    for rep, run in enumerate(found["runs"]):
        c.errors["waiter_wake_p99_ms"] += run["errors"]
        c.add("w_waiters", rep, run, waiter_wake_p99_ms=run["wake_p99_ms"])


def _local_phases(
    stack: Stack,
    redis_url: str,
    work: Path,
    which: set[str],
    reps: int,
    o: dict[str, Any],
    c: Collector,
) -> None:
    """The scenarios in ``which`` that run on this script's own Redis and processes."""
    quick = o["quick"]
    d = _durations(o)
    if which & set("abcdgh"):
        stack.start_mock(free_port(), "--request-log-size", "100")
        stack.start_api(free_port())
    if which & set("abcd"):
        _http_phase(stack, d, which, reps, work, c)
    if "h" in which:
        _batch_phase(stack, reps, c)
    if which & set("efg"):
        drain_jobs = o["drain_jobs"] or (5000 if quick else 20_000)
        memory_jobs = o["memory_jobs"] or (2000 if quick else 10_000)
        _broker_phase(
            redis_url, work, which, reps, (drain_jobs, o["drain_concurrency"], memory_jobs), c
        )
    if "g" in which:
        _rss_phase(stack, reps, o["mock_latency_ms"] or (3000 if quick else 5000), c)
    if "w" in which:
        _waiters_phase(redis_url, work, reps, o["waiter_rate"], c)


def _durations(o: dict[str, Any]) -> Durations:
    quick = o["quick"]
    return Durations(
        latency_s=o["latency_seconds"] or (2 if quick else 8),
        throughput_s=o["throughput_seconds"] or (2 if quick else 10),
        submit_s=o["throughput_seconds"] or (2 if quick else 10),
        sse_samples=o["sse_samples"] or (100 if quick else 300),
        wrk_threads=o["wrk_threads"],
    )


def _git_state() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(HERE), *args], capture_output=True, text=True, timeout=10, check=False
        )
        return done.stdout.strip()

    return git("rev-parse", "--short", "HEAD") + (
        " (dirty)" if git("status", "--porcelain") else ""
    )


def _redis_version(binary: str) -> str:
    out = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=10, check=True
    )
    return out.stdout.split()[2].removeprefix("v=")


def _keep_logs(work: Path, to: Path) -> Path:
    """Process logs outlive the temp dir: a traceback in the API log explains a bad figure."""
    to.mkdir(parents=True, exist_ok=True)
    for log in [*work.glob("*.log"), work / "redis" / "redis.log"]:
        if log.exists():
            shutil.copy(log, to / log.name)
    return to


def _queue_options(o: dict[str, Any]) -> queue_peers.QueueOptions | None:
    """``--queue-peers``' settings, or None without it; its peers must be installed."""
    if not o["with_queue_peers"]:
        return None
    opts = queue_peers.QueueOptions(
        o["queue_targets"], o["queue_n"], o["queue_samples"], o["queue_repeats"], o["queue_timeout"]
    )
    if missing := queue_peers.missing_peers(opts.targets):
        raise click.UsageError(
            f"queuebench's peers are not installed (run {queue_peers.SETUP} once): "
            + "; ".join(missing)
        )
    return opts


def _run_queue_peers(
    opts: queue_peers.QueueOptions | None,
) -> tuple[dict[str, float | None], dict[str, Any]]:
    """queuebench with anygate's driver: the ``summary`` ratio keys and ``queue_peers`` block."""
    if opts is None:
        return {}, {}
    results = HERE / "results" / "queuebench" / time.strftime("%Y%m%d-%H%M%S")
    return queue_peers.queue_summary(queue_peers.run_queuebench(opts, results))


def _soak(minutes: float, sample_s: float, out: Path | None) -> None:
    """``--soak``: the mixed load of ``soak.py`` for ``minutes``, charts on stdout, JSON in
    ``bench/results/soak-<day>.json`` (or ``out``, the process logs beside it)."""
    t_start = time.time()
    with tempfile.TemporaryDirectory(prefix="anygate-soak-") as tmp:
        work = Path(tmp)
        with EmbeddedRedis(work / "redis", aof=True) as redis_server:
            if redis_server.process is None:
                raise RuntimeError("redis-server did not start")
            stack = Stack(redis_server.url, "soak", work)
            with stack.running():
                soak.start_stack(stack)
                result = uvloop.run(
                    soak.drive(stack, redis_server.url, redis_server.process.pid, minutes, sample_s)
                )
            redis_version = _redis_version(redis_server.binary)
        logs_dir = (
            out.with_name(f"{out.stem}-logs")
            if out
            else HERE / "results" / "logs" / time.strftime("soak-%Y%m%d-%H%M%S")
        )
        logs = _keep_logs(work, logs_dir)
    meta = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_start)),
        "wall_s": round(time.time() - t_start, 1),
        "minutes": minutes,
        "sample_s": sample_s,
        "commit": _git_state(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "redis": redis_version,
        "logs": str(logs),
    }
    path = out or report.results_path(HERE / "results", prefix="soak-")
    soak.write(path, soak.document(result, meta))
    click.echo("\n" + soak.render(result))
    click.echo(f"\nwall {meta['wall_s']} s; written to {path}")


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through every ``finally``: our processes stop


@click.command()
@click.option("--quick", is_flag=True, help="Shorter measurements and smaller N; same scenarios.")
@click.option("--reps", type=click.IntRange(1, 20), default=3, show_default=True)
@click.option(
    "--scenarios",
    "which",
    default="abcdefgh",
    show_default=True,
    help="Subset of the scenario letters to run.",
)
@click.option("--latency-seconds", type=float, help="wrk duration at c=1 [8; quick 2]")
@click.option("--throughput-seconds", type=float, help="wrk duration at 64 conns [10; quick 2]")
@click.option("--sse-samples", type=int, help="streamed calls per side and repetition [300; 100]")
@click.option("--drain-jobs", type=int, help="backlog drained by the no-op worker [20000; 5000]")
@click.option("--drain-concurrency", type=int, default=64, show_default=True)
@click.option("--memory-jobs", type=int, help="queued jobs for Redis memory [10000; 2000]")
@click.option(
    "--mock-latency-ms",
    type=float,
    help="Upstream latency that keeps 1,000 jobs in flight for the RSS reading [5000; 3000]",
)
@click.option("--waiters", "with_waiters", is_flag=True, help="Also run (w): 2,000 waiters.")
@click.option(
    "--waiter-rate", type=float, default=1000, show_default=True, help="(w) jobs ended per second"
)
@click.option("--wrk-threads", type=int, default=1, show_default=True)
@click.option(
    "--out", type=click.Path(path_type=Path), help="Results file [bench/results/<day>.json]"
)
@click.option(
    "--peers", "with_peers", is_flag=True, help="Also run peerbench (anygate as a target)."
)
@click.option("--peer-targets", default="direct,nginx,litellm,portkey", show_default=True)
@click.option("--peer-quick", is_flag=True, help="peerbench --quick (1 repeat, 3 s each).")
@click.option("--peer-repeats", type=int, help="peerbench --repeats [its default, 3]")
@click.option("--peer-lat-duration", type=int, help="peerbench --lat-duration [10]")
@click.option("--peer-tput-duration", type=int, help="peerbench --tput-duration [15]")
@click.option("--peer-stream-duration", type=int, help="peerbench --stream-duration [10]")
@click.option(
    "--peer-stream-conns",
    type=int,
    default=64,
    show_default=True,
    help="peerbench --stream-conns (its own default is 8; 64 matches scenario c).",
)
@click.option("--peer-mock-port", type=int, default=18000, show_default=True)
@click.option("--peer-timeout", type=float, default=3600, show_default=True)
@click.option("--queue-peers", "with_queue_peers", is_flag=True, help="Also run queuebench.")
@click.option("--queue-targets", default=queue_peers.DEFAULT_TARGETS, show_default=True)
@click.option("--queue-n", type=click.IntRange(100), default=20_000, show_default=True)
@click.option("--queue-samples", type=click.IntRange(1), default=200, show_default=True)
@click.option("--queue-repeats", type=click.IntRange(1, 20), default=3, show_default=True)
@click.option("--queue-timeout", type=float, default=3600, show_default=True)
@click.option(
    "--redis-cost",
    "with_redis_cost",
    is_flag=True,
    help="Also redis_cost.py (Redis CPU per job beside raw streams' floor; its own Redis).",
)
@click.option(
    "--soak",
    "soak_minutes",
    type=click.FloatRange(min=0, min_open=True),
    help="Run only the soak (bench/soak.py) for this many minutes.",
)
@click.option(
    "--soak-sample-s",
    type=click.FloatRange(min=1),
    default=60,
    show_default=True,
    help="Seconds between two soak samples.",
)
def main(**o: Any) -> None:
    """anygate's docs/performance.md benchmark: table on stdout, JSON in bench/results/ (see
    run.py)."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    if o["soak_minutes"]:
        _soak(o["soak_minutes"], o["soak_sample_s"], o["out"])
        return
    quick = o["quick"]
    d = _durations(o)
    drain_jobs = o["drain_jobs"] or (5000 if quick else 20_000)
    memory_jobs = o["memory_jobs"] or (2000 if quick else 10_000)
    mock_latency_ms = o["mock_latency_ms"] or (3000 if quick else 5000)
    every_ratio = o["with_peers"] and o["with_queue_peers"]  # the headline table: (w) and cost too
    wants_w = o["with_waiters"] or every_ratio
    which, reps = set(o["which"]) | ({"w"} if wants_w else set()), o["reps"]
    if not which <= set("abcdefghw"):
        raise click.BadParameter(
            "letters a to h, and w, only ('' with --peers: peers alone)", param_hint="--scenarios"
        )
    queue_opts = _queue_options(o)  # before anything runs: missing peers stop it at once
    c = Collector()
    t_start = time.time()
    peers: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="anygate-bench-") as tmp:
        work = Path(tmp)
        with EmbeddedRedis(work / "redis", aof=True) as redis_server:
            redis_version = _redis_version(redis_server.binary)
            stack = Stack(redis_server.url, "http", work)
            with stack.running():
                _local_phases(stack, redis_server.url, work, which, reps, o, c)
        logs = _keep_logs(work, HERE / "results" / "logs" / time.strftime("%Y%m%d-%H%M%S"))
        if o["with_peers"]:
            peer_opts = peerbench.PeerOptions(
                targets=o["peer_targets"],
                quick=o["peer_quick"],
                repeats=o["peer_repeats"],
                lat_duration=o["peer_lat_duration"],
                tput_duration=o["peer_tput_duration"],
                stream_duration=o["peer_stream_duration"],
                stream_conns=o["peer_stream_conns"],
                mock_port=o["peer_mock_port"],
                timeout_s=o["peer_timeout"],
            )
            out_dir = HERE / "results" / "peerbench" / time.strftime("%Y%m%d-%H%M%S")
            raw = peerbench.run_peerbench(peer_opts, out_dir, work)
            peers, detail = peerbench.peer_summary(raw)
            c.runs["peers"].append({"raw_json": str(out_dir / "raw.json"), **detail})
    queue_keys, queue_block = _run_queue_peers(queue_opts)
    cost = _redis_cost(o["with_redis_cost"] or every_ratio, quick, reps, logs, c)
    figures = report.aggregate(c.samples)
    headlines = headline.rows(
        peers, queue_block, figures["waiter_wake_p99_ms"], cost, c.errors["waiter_wake_p99_ms"]
    )
    machine = {"cores": os.cpu_count(), "python": platform.python_version(), "redis": redis_version}
    document = {
        "summary": report.summary(figures, peers, machine)
        | ({**queue_keys, "queue_peers": queue_block} if queue_block else {})
        | ({"redis_cpu_us_per_job": cost["summary"]["redis_cpu_us_per_job"]} if cost else {})
        | headline.summary(headlines),
        "figures": figures,
        "errors": dict(c.errors),
        "meta": {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_start)),
            "wall_s": round(time.time() - t_start, 1),
            "commit": _git_state(),
            "quick": quick,
            "reps": reps,
            "scenarios": "".join(sorted(which)),
            "durations": asdict(d),
            "drain_jobs": drain_jobs,
            "drain_concurrency": o["drain_concurrency"],
            "memory_jobs": memory_jobs,
            "bulk_jobs": BULK_JOBS,
            "rss_in_flight": RSS_IN_FLIGHT,
            "mock_latency_ms_for_rss": mock_latency_ms,
            "platform": platform.platform(),
            "logs": str(logs),
        },
        "runs": c.runs,
    }
    path = o["out"] or report.results_path(HERE / "results")
    report.write(path, document)
    click.echo("\n" + report.table(figures, c.errors))
    _print_cost(cost)
    if peers:
        click.echo("\npeerbench (same run; stream resp/s at --peer-stream-conns):\n")
        click.echo(report.peer_table(peers))
    if queue_block:
        click.echo("\nqueuebench (same run; medians, min to max):\n")
        click.echo(queue_peers.queue_table(queue_block))
    if peers or queue_block:
        click.echo("\nEvery same-run target (docs/performance.md):\n")
        click.echo(headline.table(headlines))
    click.echo(f"\nwall {document['meta']['wall_s']} s; written to {path}")


if __name__ == "__main__":
    main()
