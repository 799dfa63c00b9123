"""The inputs of docs/capacity.md: what one job costs Redis, an API process and a worker process.

    python bench/capacity.py                  # ~5 min: 10,000 jobs, 3 x 10 s per HTTP kind
    python bench/capacity.py --no-shards      # without the local cluster (part 5)
    python bench/capacity.py --jobs 300 --seconds 1 --reps 1 --out /tmp/c.json   # smoke-sized

Everything runs against processes this script starts on loopback: a private redis-server with
AOF ``everysec`` (``anygate.ops.embedded_redis``), the mock provider, one API process and one
worker process (``stack.Stack``), the no-op worker of ``broker_bench``, and for part 5 a local
Redis Cluster of three masters (``anygate.ops.redis_cluster``). Five parts:

1. **Phases** (the ``Broker`` API, from this process): N enqueues alone, then their claims, the
   rate-window takes and settles a deployment with ``rpm``/``tpm`` adds, then their finishes;
   then N streamed jobs' claims (several per call), their chunk appends and finishes. Around
   each phase, ``INFO commandstats`` (``cmdstat_evalsha``: the time Redis spent inside the
   phase's script calls) and ``INFO cpu`` (Redis's main-thread CPU, which also pays
   for reading requests and writing replies) are read before and after, so each script gets
   its µs per call though ``INFO`` counts every script under one ``EVALSHA`` line.
2. **Drain** (the whole life through a real ``Worker``, ``noop_worker.py``, concurrency 64): N
   enqueues, then their drain, as one delta; checks the phases' sum against it.
3. **Sync HTTP** (``/v1/chat/completions`` through ``anygate api`` and ``anygate worker`` with the
   mock provider, wrk at 64 connections, non-streamed then streamed): CPU per request of Redis,
   the API, the worker (and the mock, for the record), from ``INFO cpu`` and ``/proc``.
4. **Attribution** (the same HTTP load, a short run with ``SLOWLOG`` logging every command):
   every command Redis ran at top level, ``EVALSHA`` resolved to its script by SHA: calls per
   request, µs per call, µs per request and share. ``SLOWLOG`` times a command exactly as
   ``INFO commandstats`` does (and the run checks that they agree); it costs Redis extra CPU to
   keep the log, which is why the CPU figures come from part 3, not from this run.
5. **Shards** (no-op drains on the local cluster): 1 pool on 1 master, then 3 pools each on a
   master of its own (``pools.<name>.shard``), one no-op worker process per pool: jobs/s per
   shard, the 3 ÷ 1 ratio, each master's CPU per job and busy share, the machine's busy cores.

Helpers live next to it: ``redis_accounting`` (INFO and SLOWLOG), ``noop_jobs`` (jobs and no-op
worker processes), ``shard_drains`` (part 5), ``capacity_model`` (the arithmetic). Prints the
tables and the sizing table of ``capacity_model`` and writes
``bench/results/capacity-<day>[-HHMMSS].json``. On a 2-core machine the processes share two
cores with wrk: CPU time per request stays meaningful, requests/s do not.
"""

from __future__ import annotations

import asyncio
import os
import platform
import signal
import statistics
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import capacity_model
import click
import report
import scenarios
import shard_drains
import uvloop
from broker_bench import enqueue_many, process_cpu_s, stop_process
from loadgen import wrk
from noop_jobs import (
    DRAIN_CONCURRENCY,
    SETTLE_S,
    in_chunks,
    new_job,
    start_noop_worker,
)
from redis.asyncio import Redis
from redis_accounting import (
    Delta,
    Snap,
    attribute,
    attribution_rows,
    delta,
    idle_rate,
    load_scripts,
    script_names,
    snap,
)
from run import _git_state, _keep_logs, _on_sigterm, _redis_version
from scenarios import CHAT_PATH, PLAIN, STREAMED
from stack import KEY, POOL, Stack, config_tree, write_config

from anygate.broker import Broker, ClaimedJob, create_redis, new_job_id
from anygate.config import parse_config
from anygate.ops.embedded_redis import EmbeddedRedis
from anygate.ops.logging import configure_logging
from anygate.ops.processes import free_port

HERE = Path(__file__).resolve().parent
WORKER_ID = "capacity-bench"
CLAIM_BATCH = 16
"""Jobs per claim call in the streamed phase (a busy worker claims as many as it has free)."""
STREAM_CHUNKS = 20
"""Chunks per streamed job, one append call each: the mock's 20 (the relay may batch them)."""
CHUNK_EVENT = (
    '{"id":"chatcmpl-mock","object":"chat.completion.chunk","model":"mock-model",'
    '"choices":[{"index":0,"delta":{"content":"word "},"finish_reason":null}]}'
)
RESULT = {
    "id": "chatcmpl-mock",
    "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "x" * 200}}],
}
USAGE = {"prompt_tokens": 40, "completion_tokens": 50, "total_tokens": 90}
HTTP_CONNS = 64
SLOWLOG_MAX = 200_000


# --- 1. Phases ------------------------------------------------------------------------------


async def _claim_all(broker: Broker, n: int, per_call: int) -> list[ClaimedJob]:
    """Claims of ``per_call`` jobs, 64 at a time (auto-pipelined), until ``n`` are claimed."""
    claimed: list[ClaimedJob] = []
    while len(claimed) < n:
        calls = min(64, -(-(n - len(claimed)) // per_call))
        replies = await asyncio.gather(
            *(broker.claim(POOL, WORKER_ID, per_call) for _ in range(calls))
        )
        got = [job for reply in replies for job in reply]
        if not got:
            raise RuntimeError(f"claims stopped at {len(claimed)} of {n} jobs")
        claimed += got
    return claimed


async def _enqueue(broker: Broker, n: int, stream: bool) -> None:
    if not stream:
        await enqueue_many(broker, n)
        return
    await in_chunks(list(range(n)), lambda _: broker.enqueue(new_job(True), new_job_id()))


async def _finish(broker: Broker, jobs: list[ClaimedJob]) -> None:
    async def one(job: ClaimedJob) -> None:
        if not await broker.finish(job, POOL, succeeded=True, result=RESULT, usage=USAGE):
            raise RuntimeError(f"finish of {job.id} was refused")

    await in_chunks(jobs, one)


async def _append(broker: Broker, jobs: list[ClaimedJob]) -> None:
    """``STREAM_CHUNKS`` appends per job, one chunk each, every job's n-th chunk together."""
    for seq in range(1, STREAM_CHUNKS + 1):

        async def one(job: ClaimedJob, seq: int = seq) -> None:
            if not await broker.append(job, "chunk", CHUNK_EVENT, first_seq=seq):
                raise RuntimeError(f"append to {job.id} was refused")

        await in_chunks(jobs, one)


RATE_WINDOW_MS = 60_000
RATE_LIMIT = 10**9
"""A limit no phase reaches: every take is admitted, as for a deployment under its rpm."""
TPM_WINDOW = 1000
"""Jobs in the tpm phase: a settle reads the whole window's log, so its cost grows with the
entries the window holds (the deployment's calls in the last minute); 1,000 is ~17 calls/s."""


async def _rate_take(broker: Broker, jobs: list[ClaimedJob]) -> None:
    """What a worker does per call with an ``rpm`` limit on the deployment: one take."""

    async def one(job: ClaimedJob) -> None:
        entry = f"{job.id}:{job.attempt}"
        admission = await broker.take_rate("rpm:bench", RATE_WINDOW_MS, RATE_LIMIT, entry, 1)
        if not admission.admitted:
            raise RuntimeError(f"rate take of {entry} refused")

    await in_chunks(jobs, one)


async def _rate_settle(broker: Broker, jobs: list[ClaimedJob]) -> None:
    """A ``tpm`` limit's settle: the estimate replaced by the tokens the provider reported."""

    async def one(job: ClaimedJob) -> None:
        entry = f"{job.id}:{job.attempt}"
        await broker.take_rate("tpm:bench", RATE_WINDOW_MS, RATE_LIMIT, entry, 100)
        await broker.settle_rate("tpm:bench", RATE_WINDOW_MS, entry, USAGE["total_tokens"])

    await in_chunks(jobs, one)


def phase_figures(name: str, script: str, jobs: int, d: Delta) -> dict[str, Any]:
    calls, usec = d.of("evalsha")
    if calls == 0:
        raise RuntimeError(f"phase {name}: no EVALSHA counted")
    return {
        "phase": name,
        "script": script,
        "jobs": jobs,
        "calls": calls,
        "calls_per_job": calls / jobs,
        "command_us_per_call": usec / calls,
        "command_us_per_job": usec / jobs,
        "cpu_us_per_call": d.cpu_us / calls,
        "cpu_us_per_job": d.cpu_us / jobs,
        "process_cpu_us_per_job": d.process_cpu_us / jobs,
        "seconds": d.seconds,
        "inner_commands": {k: v[0] for k, v in d.commands.items() if k != "evalsha"},
    }


async def phases(redis_url: str, n: int) -> dict[str, Any]:
    """Each hot-path script on its own, through the ``Broker`` a worker and an API hold."""
    config = parse_config(config_tree(redis_url, "phases"))
    redis = create_redis(config.redis)
    broker = Broker(redis, config)
    out: list[dict[str, Any]] = []
    try:
        await load_scripts(redis)
        idle = await idle_rate(redis, 1.0)

        async def measured(name: str, script: str, work: Awaitable[Any], jobs: int = n) -> Any:
            before = await snap(redis)
            result = await work
            out.append(phase_figures(name, script, jobs, delta(before, await snap(redis), idle)))
            print(f"[capacity] phase {name}: {out[-1]['cpu_us_per_call']:.1f} µs/call", flush=True)
            return result

        await measured("enqueue", "enqueue", _enqueue(broker, n, stream=False))
        plain = await measured("claim, 1 per call", "claim", _claim_all(broker, n, 1))
        await measured("ratewindow take (rpm)", "ratewindow", _rate_take(broker, plain))
        tpm = plain[:TPM_WINDOW]
        await measured(
            f"ratewindow take + settle (tpm), window of ≤ {len(tpm):,}",
            "ratewindow",
            _rate_settle(broker, tpm),
            len(tpm),
        )
        await measured("finish", "finish", _finish(broker, plain))
        await measured("enqueue, streamed", "enqueue", _enqueue(broker, n, stream=True))
        streamed = await measured(
            f"claim, {CLAIM_BATCH} per call", "claim", _claim_all(broker, n, CLAIM_BATCH)
        )
        await measured(f"append, {STREAM_CHUNKS} chunks", "append", _append(broker, streamed))
        await measured("finish, streamed", "finish", _finish(broker, streamed))
    finally:
        await redis.aclose()
    return {"idle_cpu_us_per_s": idle, "jobs": n, "phases": out}


def parts_per_job(rows: list[dict[str, Any]], names: tuple[str, ...]) -> dict[str, float]:
    chosen = [r for r in rows if r["phase"] in names]
    return {
        "command_us_per_job": sum(r["command_us_per_job"] for r in chosen),
        "cpu_us_per_job": sum(r["cpu_us_per_job"] for r in chosen),
    }


# --- 2. The whole life through a real worker --------------------------------------------------


async def _wait_drained(
    broker: Broker, pool: str, proc: asyncio.subprocess.Process, n: int
) -> None:
    deadline = time.monotonic() + 60 + n / 500
    while True:
        stats = await broker.pool_stats(pool)
        if int(stats.get("queued", 0)) == 0 and int(stats.get("inflight", 0)) == 0:
            return
        if proc.returncode is not None or time.monotonic() > deadline:
            raise RuntimeError(f"drain did not finish: {stats}, worker rc {proc.returncode}")
        await asyncio.sleep(0.02)


async def drain(redis_url: str, work: Path, n: int) -> dict[str, Any]:
    """N enqueues and their drain by one no-op worker, as one delta: the whole life of a job."""
    tree = config_tree(redis_url, "drain")
    config = parse_config(tree)
    cfg_path = write_config(work / "drain.yaml", tree)
    redis = create_redis(config.redis)
    broker = Broker(redis, config)
    proc = None
    try:
        await load_scripts(redis)
        idle = await idle_rate(redis, 1.0)
        before = await snap(redis)
        await enqueue_many(broker, n)
        t0 = time.perf_counter()
        proc = await start_noop_worker(cfg_path, work / "drain-noop.log")
        await _wait_drained(broker, POOL, proc, n)
        wall = time.perf_counter() - t0
        d = delta(before, await snap(redis), idle)
        worker_cpu_us = process_cpu_s(proc.pid) * 1e6
    finally:
        if proc is not None:
            await stop_process(proc)
        await redis.aclose()
    calls, usec = d.of("evalsha")
    return {
        "jobs": n,
        "concurrency": DRAIN_CONCURRENCY,
        "jobs_per_s_incl_worker_start": n / wall,
        "cpu_us_per_job": d.cpu_us / n,
        "process_cpu_us_per_job": d.process_cpu_us / n,
        "script_us_per_job": usec / n,
        "script_calls_per_job": calls / n,
        "command_us_per_job": sum(u for _, u in d.commands.values()) / n,
        "worker_cpu_us_per_job": worker_cpu_us / n,
        "commands": {k: {"calls": c, "usec": u} for k, (c, u) in sorted(d.commands.items())},
    }


# --- 3. and 4. Synchronous requests through the API -------------------------------------------


def _cpu_us(pids: dict[str, int]) -> dict[str, float]:
    return {name: process_cpu_s(pid) * 1e6 for name, pid in pids.items()}


def spread(values: list[float]) -> dict[str, Any]:
    """Median, min and max, as ``report.median_cell`` prints them."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "values": values,
    }


async def _http_once(
    stack: Stack, redis: Redis, pids: dict[str, int], body: bytes, seconds: float, work: Path
) -> dict[str, Any]:
    await asyncio.sleep(SETTLE_S)
    before, procs_before = await snap(redis), _cpu_us(pids)
    load = await asyncio.to_thread(
        wrk,
        stack.api_url + CHAT_PATH,
        body,
        KEY,
        conns=HTTP_CONNS,
        seconds=seconds,
        threads=1,
        work=work,
    )
    await asyncio.sleep(SETTLE_S)
    after, procs_after = await snap(redis), _cpu_us(pids)
    d = delta(before, after)
    requests = load["requests"]
    if requests == 0 or load["errors"]:
        raise RuntimeError(f"HTTP run failed: {load}")
    return {
        "requests": requests,
        "rps": load["rps"],
        "p50_ms": load["p50_ms"],
        "redis_cpu_us_per_request": d.cpu_us / requests,
        "redis_process_cpu_us_per_request": d.process_cpu_us / requests,
        **{
            f"{name}_cpu_us_per_request": (procs_after[name] - procs_before[name]) / requests
            for name in pids
        },
    }


async def http_cpu(
    stack: Stack, redis_url: str, pids: dict[str, int], seconds: float, reps: int, work: Path
) -> dict[str, Any]:
    """wrk at 64 connections, non-streamed and streamed in turn, ``reps`` times: CPU µs per
    request of each process. Each figure is the median of the repetitions (``spread``: with
    min and max; ``runs``: every one); the ``requests`` still in flight when wrk stops are
    charged to the ones it counted, an overestimate of at most 64 ÷ requests."""
    runs: dict[str, list[dict[str, Any]]] = {"plain": [], "stream": []}
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        for rep in range(reps):
            for kind, body in (("plain", PLAIN), ("stream", STREAMED)):
                fig = await _http_once(stack, redis, pids, body, seconds, work)
                runs[kind].append(fig)
                shown = ", ".join(
                    f"{k.removesuffix('_cpu_us_per_request')} {v:,.1f}"
                    for k, v in fig.items()
                    if k.endswith("_cpu_us_per_request")
                )
                print(
                    f"[capacity] http {kind} rep {rep + 1}: {fig['rps']:,.0f} req/s; "
                    f"µs/request: {shown}",
                    flush=True,
                )
    finally:
        await redis.aclose()
    out: dict[str, Any] = {}
    for kind, figs in runs.items():
        keys = [k for k in figs[0] if k != "requests"]
        out[kind] = {
            **{k: statistics.median(f[k] for f in figs) for k in keys},
            "requests": sum(f["requests"] for f in figs),
            "spread": {k: spread([f[k] for f in figs]) for k in keys},
            "runs": figs,
        }
    return out


def attribution(stack: Stack, redis_url: str, seconds: float, work: Path) -> dict[str, Any]:
    """A short run of each kind with every command in SLOWLOG; checked against commandstats."""
    names = script_names()
    out: dict[str, Any] = {}

    async def switch(redis: Redis, slower_than_us: int) -> Snap:
        """Turn SLOWLOG's every-command mode on or off and read commandstats in one MULTI: no
        command lands between the two, so SLOWLOG and commandstats cover the same calls."""
        async with redis.pipeline(transaction=True) as pipe:
            pipe.config_set("slowlog-log-slower-than", slower_than_us)
            pipe.info("commandstats")
            _, stats = await pipe.execute()
        commands = {
            name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
            for name, v in stats.items()
        }
        return Snap(t=time.perf_counter(), cpu_s=0.0, process_cpu_s=0.0, commands=commands)

    async def run(kind: str, body: bytes) -> dict[str, Any]:
        redis = Redis.from_url(redis_url, decode_responses=True)
        try:
            await redis.config_set("slowlog-max-len", SLOWLOG_MAX)
            await asyncio.sleep(SETTLE_S)
            await redis.slowlog_reset()
            before = await switch(redis, 0)
            load = await asyncio.to_thread(
                wrk,
                stack.api_url + CHAT_PATH,
                body,
                KEY,
                conns=HTTP_CONNS,
                seconds=seconds,
                threads=1,
                work=work,
            )
            await asyncio.sleep(SETTLE_S)
            after = await switch(redis, 10_000)
            entries = await redis.slowlog_get(SLOWLOG_MAX)
            await redis.slowlog_reset()
        finally:
            await redis.aclose()
        d = delta(before, after)
        found = attribute(entries, names)
        enqueues = found["calls"].get("script enqueue", 0)
        if enqueues == 0:
            raise RuntimeError(f"attribution {kind}: no enqueue in SLOWLOG ({load})")
        logged = sum(c for k, c in found["calls"].items() if k.startswith("script "))
        counted, counted_usec = d.of("evalsha")
        logged_usec = sum(u for k, u in found["usec"].items() if k.startswith("script "))
        rows = attribution_rows(found, enqueues)
        return {
            "requests": enqueues,
            "wrk_requests": load["requests"],
            "complete": logged == counted and len(entries) < SLOWLOG_MAX,
            "evalsha_calls": {"slowlog": logged, "commandstats": counted},
            "evalsha_usec": {"slowlog": logged_usec, "commandstats": counted_usec},
            "command_us_per_request": sum(r["us_per_request"] for r in rows),
            "rows": rows,
            "inner_calls_per_request": {k: v / enqueues for k, v in sorted(found["inner"].items())},
        }

    for kind, body in (("plain", PLAIN), ("stream", STREAMED)):
        out[kind] = uvloop.run(run(kind, body))
        print(
            f"[capacity] attribution {kind}: {out[kind]['command_us_per_request']:.1f} µs of "
            f"commands per request over {out[kind]['requests']} requests",
            flush=True,
        )
    return out


# --- Tables -----------------------------------------------------------------------------------


def phase_table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| phase | script | calls/job | µs/call (commandstats) | µs/call (Redis CPU) "
        "| µs/job (commandstats) | µs/job (Redis CPU) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cells = [
            report.fmt(r[k], "ms")
            for k in (
                "command_us_per_call",
                "cpu_us_per_call",
                "command_us_per_job",
                "cpu_us_per_job",
            )
        ]
        out.append(
            f"| {r['phase']} | {r['script']} | {r['calls_per_job']:.3g} | {' | '.join(cells)} |"
        )
    return "\n".join(out)


def attribution_table(att: dict[str, Any], cpu_us: float) -> str:
    out = [
        "| script / command | calls per request | µs per call | µs per request | share |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in att["rows"]:
        out.append(
            f"| {r['command']} | {r['calls_per_request']:.3g} | {r['us_per_call']:.2f} "
            f"| {r['us_per_request']:.2f} | {r['share'] * 100:.1f} % |"
        )
    out.append(
        f"| **total, commands** | | | **{att['command_us_per_request']:.1f}** | 100 % |\n"
        f"| **total, Redis main-thread CPU** (untraced run) | | | **{cpu_us:.1f}** | |"
    )
    return "\n".join(out)


HTTP_ROWS = (
    ("redis", "Redis, main thread"),
    ("redis_process", "Redis, whole process"),
    ("api", "API process"),
    ("worker", "worker process"),
    ("mock", "mock provider (not sized)"),
)


def http_table(http: dict[str, Any]) -> str:
    out = [
        f"| CPU per request | non-streamed ({http['plain']['rps']:,.0f} req/s) "
        f"| streamed, 20 chunks ({http['stream']['rps']:,.0f} resp/s) |",
        "|---|---:|---:|",
    ]
    for key, label in HTTP_ROWS:
        cells = [
            report.median_cell(http[kind]["spread"][f"{key}_cpu_us_per_request"], "µs")
            for kind in ("plain", "stream")
        ]
        out.append(f"| {label} | {' | '.join(cells)} |")
    return "\n".join(out)


def model_inputs(
    figures: dict[str, Any], latency_s: float, utilisation: float
) -> capacity_model.Inputs:
    """One kind's (``http["plain"]`` or ``http["stream"]``) medians as the model's inputs."""
    return capacity_model.Inputs(
        redis_us=figures["redis_cpu_us_per_request"],
        api_us=figures["api_cpu_us_per_request"],
        worker_us=figures["worker_cpu_us_per_request"],
        upstream_latency_s=latency_s,
        utilisation=utilisation,
    )


def results_path() -> Path:
    return report.results_path(HERE / "results", prefix="capacity-")


# --- main -------------------------------------------------------------------------------------


@click.command()
@click.option(
    "--jobs",
    type=click.IntRange(50),
    default=10_000,
    show_default=True,
    help="Jobs per phase and drained.",
)
@click.option(
    "--seconds", type=float, default=10.0, show_default=True, help="wrk run per kind, CPU figures."
)
@click.option(
    "--reps",
    type=click.IntRange(1, 20),
    default=3,
    show_default=True,
    help="Repetitions of the HTTP runs; figures are medians.",
)
@click.option(
    "--attribution-seconds",
    type=float,
    default=2.0,
    show_default=True,
    help="wrk run per kind with SLOWLOG on.",
)
@click.option(
    "--latency-s",
    type=float,
    default=1.0,
    show_default=True,
    help="Upstream latency the model assumes.",
)
@click.option(
    "--utilisation",
    type=float,
    default=0.6,
    show_default=True,
    help="Target busy share of each process.",
)
@click.option(
    "--shard-jobs",
    type=click.IntRange(50),
    help="Jobs per pool in the 1- and 3-shard drains [--jobs].",
)
@click.option("--shard-reps", type=click.IntRange(1, 10), default=2, show_default=True)
@click.option("--no-shards", is_flag=True, help="Skip the 1- and 3-shard drains.")
@click.option(
    "--logs",
    type=click.Path(path_type=Path),
    help="Keep every process's log (and Redis's) in this directory.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Results file [bench/results/capacity-<day>.json]",
)
def main(**o: Any) -> None:
    """docs/capacity.md's inputs: Redis, API and worker CPU per job; tables and a JSON file."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    configure_logging("warning")  # the phases' Broker would log a line per job it finishes
    t_start = time.time()
    n = o["jobs"]
    document: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="anygate-capacity-") as tmp:
        work = Path(tmp)
        with EmbeddedRedis(work / "redis", aof=True) as server:
            document["phases"] = uvloop.run(phases(server.url, n))
            document["drain"] = uvloop.run(drain(server.url, work, n))
            stack = Stack(server.url, "http", work)
            with stack.running():
                mock = stack.start_mock(free_port())
                api = stack.start_api(free_port())
                worker = stack.start_worker(POOL, HTTP_CONNS)
                scenarios.smoke(stack)
                scenarios.warm_up(stack, work)
                pids = {"api": api.pid, "worker": worker.pid, "mock": mock.pid}
                document["http"] = uvloop.run(
                    http_cpu(stack, server.url, pids, o["seconds"], o["reps"], work)
                )
                document["attribution"] = attribution(
                    stack, server.url, o["attribution_seconds"], work
                )
            redis_version = _redis_version(server.binary)
        if not o["no_shards"]:
            document["shards"] = shard_drains.shard_scaling(
                work, o["shard_jobs"] or n, o["shard_reps"]
            )
        if o["logs"]:
            _keep_logs(work, o["logs"])
    rows = document["phases"]["phases"]
    whole = document["drain"]
    document["check"] = {
        "drain_whole_life": {k: whole[k] for k in ("script_us_per_job", "cpu_us_per_job")}
    }
    for label, claim in (
        ("claims_of_1", "claim, 1 per call"),
        ("claims_of_16", f"claim, {CLAIM_BATCH} per call"),
    ):
        parts = parts_per_job(rows, ("enqueue", claim, "finish"))
        document["check"][f"parts_{label}"] = {
            **parts,
            "over_whole_cpu": parts["cpu_us_per_job"] / whole["cpu_us_per_job"],
            "over_whole_script_time": parts["command_us_per_job"] / whole["script_us_per_job"],
        }
    inputs = model_inputs(document["http"]["plain"], o["latency_s"], o["utilisation"])
    plans = capacity_model.plans(inputs)
    streamed = model_inputs(document["http"]["stream"], o["latency_s"], o["utilisation"])
    streamed_plans = capacity_model.plans(streamed)
    document["model"] = {
        "inputs": asdict(inputs),
        "plans": [p.as_dict() for p in plans],
        "streamed_inputs": asdict(streamed),
        "streamed_plans": [p.as_dict() for p in streamed_plans],
    }
    document["meta"] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_start)),
        "wall_s": round(time.time() - t_start, 1),
        "commit": _git_state(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "redis": redis_version,
        "platform": platform.platform(),
        "aof": "everysec",
        "jobs": n,
        "seconds": o["seconds"],
        "reps": o["reps"],
        "latency_s": o["latency_s"],
        "utilisation": o["utilisation"],
        "attribution_seconds": o["attribution_seconds"],
        "http_connections": HTTP_CONNS,
        "drain_concurrency": DRAIN_CONCURRENCY,
    }
    path = o["out"] or results_path()
    report.write(path, document)
    plain_cpu = document["http"]["plain"]["redis_cpu_us_per_request"]
    stream_cpu = document["http"]["stream"]["redis_cpu_us_per_request"]
    click.echo("\nPhases (Broker API, one script at a time):\n\n" + phase_table(rows))
    for label in ("claims_of_1", "claims_of_16"):
        part = document["check"][f"parts_{label}"]
        click.echo(
            f"\nParts (enqueue + claim + finish, {label.replace('_', ' ')}): "
            f"{part['cpu_us_per_job']:.1f} µs CPU, {part['command_us_per_job']:.1f} µs in scripts"
        )
    click.echo(
        f"Whole life through a no-op worker: {whole['cpu_us_per_job']:.1f} µs CPU, "
        f"{whole['script_us_per_job']:.1f} µs in scripts per job"
    )
    click.echo("\nSync non-streamed request, every Redis command:\n")
    click.echo(attribution_table(document["attribution"]["plain"], plain_cpu))
    click.echo("\nSync streamed request (20 chunks), every Redis command:\n")
    click.echo(attribution_table(document["attribution"]["stream"], stream_cpu))
    click.echo("\nCPU per request (wrk, 64 connections; median, min to max):\n")
    click.echo(http_table(document["http"]))
    click.echo(f"\nModel ({o['latency_s']} s upstream, {o['utilisation']:.0%} utilisation):\n")
    click.echo(capacity_model.table(plans))
    click.echo("\nThe same, every request streamed (20 chunks):\n")
    click.echo(capacity_model.table(streamed_plans))
    if "shards" in document:
        click.echo(
            "\nNo-op drain on a 3-master local cluster, one worker process per pool "
            f"({document['shards']['jobs_per_pool']:,} jobs per pool):\n"
        )
        click.echo(shard_drains.shard_table(document["shards"]["figures"]))
    click.echo(f"\nwall {document['meta']['wall_s']} s; written to {path}")


if __name__ == "__main__":
    main()
