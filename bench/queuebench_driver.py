"""anygate as one queue of queuebench (docs/performance.md#same-run-queue-comparison).

    python bench/queuebench_driver.py --url redis://127.0.0.1:6379/0 --n 20000 --samples 200 \
        --out /tmp/qb/result.json [--concurrency 64] [--namespace qb] [--profile DIR]

Speaks the harness's driver protocol (``queuebench_protocol``) through anygate's own parts:

1. **enqueue**: N no-op jobs through ``Broker.enqueue``, 1,000 at a time in one gather (the
   broker pipelines each chunk), as ``broker_bench.enqueue_many`` does;
2. **drain**: then one worker *process* (``queuebench_worker.py``: a real ``Worker`` whose
   provider call does nothing but stamp the harness's marker); the drain rate is over first →
   N-th job, the worker's start-up apart (``startup_s``);
3. **round trip**: with that worker still running, single jobs one at a time: subscribe to the
   job's channel, enqueue, wait for its terminal event, read the record (the API's long-poll,
   ``GET /v1/jobs/{id}?wait=``, waits exactly so).

Besides the protocol's figures it writes what the drain cost: Redis main-thread CPU per job
(``INFO cpu``), the commands Redis ran per job (``INFO commandstats``) and the worker's CPU per
job over first → last job. ``--profile DIR`` also logs every command in ``SLOWLOG`` during the
drain (per-script µs per job, by script name) and runs the worker under ``cProfile``
(``DIR/worker.prof``); both slow the drain, so a profiled run's rate is not a figure.

The harness ``FLUSHALL``s Redis between runs; the namespace only matters when the Redis is
shared (the smoke test's).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import uvloop
from broker_bench import enqueue_many, new_job
from queuebench_protocol import (
    WARMUP,
    clear_marker,
    drain_result,
    rt_summary,
    wait_done,
    write_atomic,
)
from redis.asyncio import Redis
from redis_accounting import Snap, attribute, attribution_rows, delta, load_scripts, script_names
from redis_accounting import snap as redis_snap
from stack import POOL, TENANT, config_tree, write_config

from anygate.broker import Broker, JobEvent, Subscriptions, create_redis, new_job_id
from anygate.broker.notify import RESYNC
from anygate.config import AnygateConfig, parse_config

HERE = Path(__file__).resolve().parent
DEFAULT_CONCURRENCY = 64
"""The harness passes 0 ("the library's default"): bench/run.py's drain scenario uses 64."""
ROUND_TRIP_TIMEOUT_S = 10.0
SLOWLOG_MAX = 2_000_000


async def _stop(proc: asyncio.subprocess.Process, grace: float = 10.0) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            proc.kill()
            await asyncio.wait_for(proc.wait(), 5)


async def _spawn_worker(
    cfg: Path, concurrency: int, n: int, done: Path, workdir: Path, profile: Path | None
) -> asyncio.subprocess.Process:
    """In the driver's process group: the harness kills that group when a run overruns."""
    env = {**os.environ, "QB_N": str(n), "QB_DONE_FILE": str(done), "BENCH_MOCK_KEY": "unused"}
    argv = [sys.executable]
    if profile is not None:
        argv += ["-m", "cProfile", "-o", str(profile / "worker.prof")]
    argv += [str(HERE / "queuebench_worker.py"), str(cfg), str(concurrency)]
    with (workdir / "worker.log").open("ab") as log:
        return await asyncio.create_subprocess_exec(
            *argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


def redis_costs(before: Snap, after: Snap, jobs: int) -> dict[str, Any]:
    """Redis's CPU and commands per drained job (the worker's start-up commands included: a
    few dozen calls against N jobs)."""
    d = delta(before, after)
    top = sorted(d.commands.items(), key=lambda kv: -kv[1][1])
    return {
        "redis_cpu_us_per_job": d.cpu_us / jobs,
        "redis_process_cpu_us_per_job": d.process_cpu_us / jobs,
        "redis_commands_per_job": {
            name: {"calls": calls / jobs, "us": usec / jobs} for name, (calls, usec) in top
        },
    }


async def round_trip(broker: Broker, subs: Subscriptions) -> None:
    """Enqueue one job and wait for its result as the API's long-poll does: subscribed before
    the job exists, so its end cannot slip past; the record is read once the end is heard."""
    job_id = new_job_id(broker.keys.shard_of_pool(POOL))
    async with subs.subscribe(broker.keys.job_channel(job_id)) as queue:
        await broker.enqueue(new_job(), job_id)
        while True:
            message = await asyncio.wait_for(queue.get(), ROUND_TRIP_TIMEOUT_S)
            if message != RESYNC and JobEvent.from_message(message).terminal:
                break
            if message == RESYNC:  # the channel was lost a while: the job may have ended
                found = await broker.get(TENANT, job_id)
                if found is not None and found.status.terminal:
                    break
    record = await broker.get(TENANT, job_id)
    if record is None or not record.status.terminal:
        raise RuntimeError(f"round trip {job_id}: no finished record ({record})")


async def _round_trips(
    broker: Broker, redis: Redis, samples: int, budget_s: float
) -> dict[str, Any]:
    subs = Subscriptions(redis)
    await subs.start()
    out: dict[str, Any] = {}
    latencies: list[float] = []
    t_end = time.monotonic() + budget_s
    try:
        for i in range(samples + WARMUP):
            t = time.perf_counter()
            await round_trip(broker, subs)
            if i >= WARMUP:
                latencies.append(time.perf_counter() - t)
            if time.monotonic() > t_end:
                out["rt_note"] = f"round-trip phase capped at {budget_s:.0f}s"
                break
    finally:
        await subs.close()
    return {**out, **rt_summary(latencies)} if latencies else out


async def _slowlog(redis: Redis, on: bool) -> list[dict[str, Any]]:
    """Every command in SLOWLOG while ``on``; turning it off returns what it logged."""
    if on:
        await redis.config_set("slowlog-max-len", SLOWLOG_MAX)
        await redis.slowlog_reset()
        await redis.config_set("slowlog-log-slower-than", 0)
        return []
    await redis.config_set("slowlog-log-slower-than", 10_000)
    entries: list[dict[str, Any]] = await redis.slowlog_get(SLOWLOG_MAX)
    await redis.slowlog_reset()
    return entries


def _meta(concurrency: int) -> dict[str, Any]:
    def version(pkg: str) -> str:
        try:
            return importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    return {
        "versions": {"anygate": version("anygate"), "redis": version("redis")},
        "worker": f"1 proc, anygate Worker, concurrency={concurrency}",
        "enqueue_mode": "Broker.enqueue x1000 gathered (auto-pipelined)",
    }


async def run(o: dict[str, Any]) -> dict[str, Any]:
    workdir: Path = o["workdir"]
    n, profile = o["n"], o["profile"]
    concurrency = o["concurrency"] or DEFAULT_CONCURRENCY
    tree = config_tree(o["url"], o["namespace"])
    config: AnygateConfig = parse_config(tree)
    cfg = write_config(workdir / f"anygate-{o['namespace']}.yaml", tree)
    redis = create_redis(config.redis)
    broker = Broker(redis, config)
    res = _meta(concurrency)
    proc = None
    try:
        await load_scripts(redis)  # as the other queues load theirs before the clock starts
        t0 = time.perf_counter()
        await enqueue_many(broker, n)
        dt = time.perf_counter() - t0
        res.update(enqueue_s=dt, enqueue_jobs_s=n / dt)
        done = workdir / "done.json"
        clear_marker(done)
        if profile is not None:
            await _slowlog(redis, on=True)
        before = await redis_snap(redis)
        t_spawn = time.time()
        proc = await _spawn_worker(cfg, concurrency, n, done, workdir, profile)
        stamp = await wait_done(done, proc, o["drain_timeout"])
        res.update(redis_costs(before, await redis_snap(redis), int(stamp.get("count", n))))
        res.update(drain_result(stamp, t_spawn, n))
        if profile is not None:
            found = attribute(await _slowlog(redis, on=False), script_names())
            res["slowlog_per_job"] = attribution_rows(found, int(stamp.get("count", n)))
        if stamp.get("partial"):
            res["note"] = f"drain capped at {o['drain_timeout']:.0f}s: {stamp['count']}/{n} done"
            res["rt_note"] = "round trip not measured (backlog not drained)"
        else:
            res.update(await _round_trips(broker, redis, o["samples"], o["rt_budget"]))
    finally:
        if proc is not None:
            await _stop(proc)
        await redis.aclose()
    res.setdefault("n", n)
    return res


@click.command()
@click.option("--url", required=True, help="Redis URL (the harness's server).")
@click.option("--n", type=click.IntRange(1), default=20_000, show_default=True)
@click.option("--samples", type=click.IntRange(0), default=200, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--concurrency", type=click.IntRange(0), default=0, help="0: 64")
@click.option("--variant", default="", help="Accepted for the protocol; anygate has none.")
@click.option("--workdir", type=click.Path(path_type=Path), help="[--out's folder]")
@click.option("--drain-timeout", type=float, default=90.0, show_default=True)
@click.option("--rt-budget", type=float, default=25.0, show_default=True)
@click.option("--namespace", default="qb", show_default=True)
@click.option(
    "--profile",
    type=click.Path(path_type=Path),
    help="Also SLOWLOG every command and cProfile the worker (slows the drain).",
)
def main(**o: Any) -> None:
    """Enqueue, drain and round trips through anygate's broker; JSON to --out."""
    o["workdir"] = o["workdir"] or o["out"].parent
    for folder in (o["workdir"], o["profile"]):
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
    result = uvloop.run(run(o))
    write_atomic(o["out"], result)
    click.echo(
        f"enqueue {result['enqueue_jobs_s']:,.0f}/s drain {result['drain_jobs_s']:,.0f}/s "
        f"rt p50 {result.get('rt_p50_ms', float('nan')):.2f} ms "
        f"redis {result['redis_cpu_us_per_job']:.0f} µs/job "
        f"worker {result.get('worker_cpu_us_per_job', float('nan')):.0f} µs/job"
    )


if __name__ == "__main__":
    main()
