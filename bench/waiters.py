"""Waiting clients at scale: from a job's end to its waiters' answers, with 2,000 of them.

    python bench/waiters.py                      # 1,000 long-polls + 1,000 SSE watchers, 3 reps
    python bench/waiters.py --baseline main      # and the same on main's code, interleaved
    python bench/run.py --scenarios w            # the same scenario inside the main bench

One API process and one worker process (``gate_worker.py``: it claims every job and ends each
one only when this script releases it) on a private redis-server with AOF everysec. Each
repetition queues ``polls + watchers`` jobs, waits until the worker runs them all, opens one
long-poll (``GET /v1/jobs/{id}?wait=60``) or one SSE watcher (``GET /v1/jobs/{id}/events``) per
job from this process (``waiter_client.py``), waits until every waiter waits (each watcher has
its replayed log, the API's CPU went quiet), then releases the jobs in a random order at
``--rate`` jobs/s. A waiter's figure is the time from its job's ``finished_ms`` (Redis time, set
by the finish script) to the moment its answer was complete here: p50/p90/p99/max, plus the
Redis connections of the API process and their subscriptions (``CLIENT LIST`` ``sub=``), the
API's and this client's CPU over the release (the client must not be the bottleneck).

``--baseline REF`` runs a second API and worker on ``git archive REF`` of this repository (put
first on their ``PYTHONPATH``), each repetition on both, in alternating order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import click
import psutil
import report
import uvloop
from broker_bench import new_job, process_cpu_s
from redis.asyncio import Redis
from stack import KEY, POOL, Stack, child_env, start, wait_registered
from waiter_client import Answer, open_waiters

from anygate.broker import Broker, create_redis, new_job_id
from anygate.broker.connection import awaited
from anygate.config import load_config
from anygate.ops.embedded_redis import EmbeddedRedis
from anygate.ops.processes import free_port

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
QUIET_CPU_S = 0.02
"""The API is done setting waiters up once it used less than this much CPU in ``QUIET_S``."""
QUIET_S = 0.3
FIGURES = [
    ("wake_p50_ms", "job end → answer p50, all waiters", "ms"),
    ("wake_p90_ms", "job end → answer p90, all waiters", "ms"),
    ("wake_p99_ms", "job end → answer p99, all waiters", "ms"),
    ("wake_max_ms", "job end → answer max, all waiters", "ms"),
    ("poll_p99_ms", "long-polls p99", "ms"),
    ("sse_p99_ms", "SSE watchers p99", "ms"),
    ("setup_s", "2,000 waiters set up (connect → all waiting)", "s"),
    ("api_redis_conns", "API process: Redis connections, all waiting", ""),
    ("api_subscriptions", "API process: subscribed channels, all waiting", ""),
    ("api_cpu_s", "API CPU during the release", "s"),
    ("api_runqueue_s", "API runnable but waiting for a core during the release", "s"),
    ("client_cpu_pct", "client CPU ÷ wall during the release", "%"),
    ("worker_cpu_s", "gate worker CPU during the release (it ends the jobs)", "s"),
    ("load_1m", "machine load average (1 min) as the release began", ""),
]


def raise_nofile(want: int) -> None:
    """Soft RLIMIT_NOFILE up to ``want`` (children inherit it): 2,000 sockets on each side."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


def baseline_tree(ref: str, into: Path) -> Path:
    """``git archive REF`` unpacked, and a directory whose ``anygate/<name>`` links point at its
    folders as pyproject maps them: put first on ``PYTHONPATH``, it wins over the editable
    install (a meta-path finder appended after the path finder)."""
    src = into / "src"
    src.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref], capture_output=True, check=True, timeout=60
    )
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True, timeout=60)
    mapping = tomllib.loads((src / "pyproject.toml").read_text())["tool"]["setuptools"]
    path = into / "path"
    for package, folder in mapping["package-dir"].items():
        parts = package.split(".")
        if len(parts) != 2:
            continue  # a subpackage: inside its parent's folder already
        (path / parts[0]).mkdir(parents=True, exist_ok=True)
        (path / parts[0] / parts[1]).symlink_to(src / folder)
    return path


async def api_subscriptions(redis: Redis, api_pid: int) -> tuple[int, int]:
    """(Redis connections, subscribed channels) of the API process: ``CLIENT LIST`` entries
    whose port is one of the process's own sockets."""
    ports = {c.laddr.port for c in psutil.Process(api_pid).net_connections("tcp") if c.raddr}
    conns = subs = 0
    for client in await redis.client_list():
        if int(client["addr"].rsplit(":", 1)[1]) in ports:
            conns += 1
            subs += int(client.get("sub", 0)) + int(client.get("psub", 0))
    return conns, subs


async def _wait_quiet(pid: int, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    before = process_cpu_s(pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(QUIET_S)
        now = process_cpu_s(pid)
        if now - before < QUIET_CPU_S:
            return
        before = now
    raise RuntimeError(f"the API did not go quiet within {limit_s:g} s")


async def _wait_running(broker: Broker, n: int, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while int((await broker.pool_stats(POOL)).get("inflight", 0)) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not take {n} jobs within {limit_s:g} s")
        await asyncio.sleep(0.05)


async def _release(redis: Redis, key: str, ids: list[str], rate: float) -> None:
    """Push job ids to the gate worker at ``rate`` jobs/s (every 5 ms, those now due)."""
    t0, sent = time.monotonic(), 0
    while sent < len(ids):
        due = min(len(ids), int((time.monotonic() - t0) * rate) + 1)
        if due > sent:
            await awaited(redis.rpush(key, " ".join(ids[sent:due])))
            sent = due
        await asyncio.sleep(0.005)


def runqueue_wait_s(pid: int) -> float:
    """Time the process's threads spent runnable but waiting for a core (``schedstat``'s
    second field, summed over its threads): CPU the process wanted and was not given."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def _profiler(pid: int, out: Path | None) -> subprocess.Popen[bytes] | None:
    """``py-spy record`` of the API process into ``out`` (collapsed stacks), when asked."""
    if out is None:
        return None
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    argv = [spy, "record", "-p", str(pid), "-r", "200", "-f", "raw", "-o", str(out)]
    return subprocess.Popen([*argv, "--nonblocking"], stdout=subprocess.DEVNULL)


def _stop_profiler(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None:
        proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        proc.wait(30)


async def one_run(
    stack: Stack,
    api_pid: int,
    release_key: str,
    polls: int,
    watchers: int,
    rate: float,
    profile: Path | None = None,
    worker_pid: int = 0,
) -> dict[str, Any]:
    """One repetition on one stack (its API and gate worker up): the figures of ``FIGURES``."""
    config = load_config(stack.config_path)
    redis = create_redis(config.redis)
    broker = Broker(redis, config)
    try:
        ids = [new_job_id(broker.keys.shard_of_pool(POOL)) for _ in range(polls + watchers)]
        await asyncio.gather(*(broker.enqueue(new_job(), job_id) for job_id in ids))
        await _wait_running(broker, len(ids), 60)
        kinds = ["poll"] * polls + ["sse"] * watchers
        random.shuffle(kinds)
        t_setup = time.monotonic()
        waiters = await open_waiters(stack.api_port, list(zip(kinds, ids, strict=True)), KEY)
        await asyncio.wait([w.ready for w in waiters], timeout=60)
        stuck = [w.seen() for w in waiters if not w.ready.done()]
        if stuck:
            raise RuntimeError(f"{len(stuck)} watchers not waiting after 60 s: {stuck[:2]}")
        await _wait_quiet(api_pid, 120)
        setup_s = time.monotonic() - t_setup
        # Read now, not during the release: psutil's socket scan would stall this loop.
        conns, subscriptions = await api_subscriptions(redis, api_pid)
        order = random.sample(ids, len(ids))
        spy = _profiler(api_pid, profile)
        if spy is not None:
            await asyncio.sleep(1.0)  # attached before the release begins
        load_1m = os.getloadavg()[0]
        worker_cpu = process_cpu_s(worker_pid) if worker_pid else 0.0
        api_waited = runqueue_wait_s(api_pid)
        api_cpu, client_cpu, t0 = process_cpu_s(api_pid), time.process_time(), time.monotonic()
        await _release(redis, release_key, order, rate)
        answers: list[Answer] = await asyncio.wait_for(
            asyncio.gather(*(w.done for w in waiters)), 90
        )
        _stop_profiler(spy)
        wall = time.monotonic() - t0
        client_cpu_pct = (time.process_time() - client_cpu) / wall * 100
        api_cpu_s = process_cpu_s(api_pid) - api_cpu
        api_waited_s = runqueue_wait_s(api_pid) - api_waited
        worker_cpu_s = process_cpu_s(worker_pid) - worker_cpu if worker_pid else 0.0
    finally:
        await redis.aclose()
    ok = [a for a in answers if not a.error]
    errors = [a.error for a in answers if a.error]
    every = sorted(a.wake_ms for a in ok)
    by_kind = {k: sorted(a.wake_ms for a in ok if a.kind == k) for k in ("poll", "sse")}
    if not every:
        raise RuntimeError(f"no waiter answered: {errors[:3]}")
    return {
        "wake_p50_ms": statistics.median(every),
        "wake_p90_ms": _pct(every, 0.90),
        "wake_p99_ms": _pct(every, 0.99),
        "wake_max_ms": every[-1],
        "poll_p99_ms": _pct(by_kind["poll"], 0.99) if by_kind["poll"] else 0.0,
        "sse_p99_ms": _pct(by_kind["sse"], 0.99) if by_kind["sse"] else 0.0,
        "setup_s": setup_s,
        "api_redis_conns": float(conns),
        "api_subscriptions": float(subscriptions),
        "api_cpu_s": api_cpu_s,
        "client_cpu_pct": client_cpu_pct,
        "worker_cpu_s": worker_cpu_s,
        "api_runqueue_s": api_waited_s,
        "load_1m": load_1m,
        "release_wall_s": wall,
        "errors": len(errors),
        "first_errors": errors[:5],
    }


class Side:
    """One API process and one gate worker on their own namespace (and maybe older code)."""

    def __init__(self, name: str, redis_url: str, work: Path, concurrency: int, pythonpath: str):
        env = {"PYTHONPATH": pythonpath} if pythonpath else {}
        self.name = name
        self.stack = Stack(redis_url, f"w{name}", work, env=env, label=name)
        self.release_key = f"bench:{name}:release"
        self.api = self.stack.start_api(free_port())
        argv = [
            sys.executable,
            str(HERE / "gate_worker.py"),
            str(self.stack.config_path),
            str(concurrency),
            self.release_key,
        ]
        environment = child_env(self.stack.config_path) | env
        self.worker = start(f"gate-{name}", argv, environment, work)
        self.stack.procs.append(self.worker)
        wait_registered(redis_url, self.stack.namespace, POOL, self.worker)


def measure(
    redis_url: str,
    work: Path,
    polls: int,
    watchers: int,
    rate: float,
    reps: int,
    baseline: str,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Every repetition on every side, alternating which side goes first; per side and figure
    the repetitions' values, and the raw runs."""
    raise_nofile(4 * (polls + watchers) + 1024)
    sides: list[Side] = []
    try:
        sides.append(Side("current", redis_url, work, polls + watchers, ""))
        if baseline:
            tree = baseline_tree(baseline, work / "baseline")
            sides.append(Side("baseline", redis_url, work, polls + watchers, str(tree)))
        samples: dict[str, dict[str, list[float]]] = {s.name: {} for s in sides}
        runs: list[dict[str, Any]] = []
        for rep in range(reps):
            for side in sides if rep % 2 == 0 else sides[::-1]:
                spy = profile and profile / f"api-{side.name}-{rep + 1}.txt"
                out = uvloop.run(
                    one_run(
                        side.stack,
                        side.api.pid,
                        side.release_key,
                        polls,
                        watchers,
                        rate,
                        spy,
                        side.worker.pid,
                    )
                )
                runs.append({"side": side.name, "rep": rep, **out})
                for key, _label, _unit in FIGURES:
                    samples[side.name].setdefault(key, []).append(out[key])
                shown = ", ".join(f"{k} {out[k]:,.2f}" for k, _l, _u in FIGURES[:4])
                print(f"[waiters] rep {rep + 1} {side.name}: {shown}, errors {out['errors']}")
    except Exception:
        for side in sides:
            for proc in side.stack.procs:
                print(f"--- {proc.name} log (tail) ---\n{proc.log_tail()}", flush=True)
        raise
    finally:
        for side in sides:
            side.stack.close()
    ratios = (("current", "baseline"),) if baseline else ()
    return {
        "samples": samples,
        "runs": runs,
        "table": report.side_by_side(samples, FIGURES, ratios),
    }


def table(found: dict[str, Any]) -> str:
    sides = list(found["samples"])
    ratio = " current ÷ baseline |" if len(sides) > 1 else ""
    head = "| figure | " + " | ".join(sides) + " |" + ratio
    rows = [head, "|---|" + "---:|" * (len(sides) + (len(sides) > 1))]
    for key, label, unit in FIGURES:
        row = found["table"][key]
        cells = [report.median_cell(row[s], unit) for s in sides]
        if len(sides) > 1:
            cells.append(f"{row['current_over_baseline']['paired_median']:.2f}x")
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


@click.command()
@click.option("--polls", type=click.IntRange(0, 10_000), default=1000, show_default=True)
@click.option("--watchers", type=click.IntRange(0, 10_000), default=1000, show_default=True)
@click.option(
    "--rate",
    type=click.FloatRange(1),
    default=1000,
    show_default=True,
    help="Jobs released (ended) per second.",
)
@click.option("--reps", type=click.IntRange(1, 20), default=3, show_default=True)
@click.option("--baseline", default="", help="Also measure this git ref's code, interleaved.")
@click.option("--out", type=click.Path(path_type=Path), help="[bench/results/waiters-<day>.json]")
@click.option("--logs", type=click.Path(path_type=Path), help="Keep the processes' logs here.")
@click.option(
    "--profile",
    type=click.Path(path_type=Path),
    help="py-spy each API process during each release into this folder (collapsed stacks).",
)
def main(
    polls: int,
    watchers: int,
    rate: float,
    reps: int,
    baseline: str,
    out: Path | None,
    logs: Path | None,
    profile: Path | None,
) -> None:
    """1,000 long-polls and 1,000 SSE watchers on one API process while their jobs end."""
    if polls + watchers == 0:
        raise click.BadParameter("at least one waiter", param_hint="--polls/--watchers")
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="anygate-waiters-") as tmp:
        work = Path(tmp)
        with EmbeddedRedis(work / "redis", aof=True) as redis_server:
            try:
                if profile is not None:
                    profile.mkdir(parents=True, exist_ok=True)
                found = measure(
                    redis_server.url, work, polls, watchers, rate, reps, baseline, profile
                )
            finally:
                if logs is not None:
                    logs.mkdir(parents=True, exist_ok=True)
                    for log in work.glob("*.log"):
                        shutil.copy(log, logs / log.name)
    document = {
        "summary": {
            "waiter_wake_p99_ms": statistics.median(found["samples"]["current"]["wake_p99_ms"])
        },
        **found,
        "meta": {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "wall_s": round(time.time() - started, 1),
            "polls": polls,
            "watchers": watchers,
            "rate": rate,
            "reps": reps,
            "baseline": baseline,
            "cores": os.cpu_count(),
        },
    }
    path = out or report.results_path(HERE / "results", "waiters-")
    report.write(path, document)
    click.echo("\n" + table(found))
    click.echo(f"\nwall {document['meta']['wall_s']} s; written to {path}")


if __name__ == "__main__":
    main()
