"""One measurement of ``redis_cost.py``, run as a process of its own so that a baseline checkout
can be measured beside the current one in the same run (``redis_cost.py --against``).

    python bench/redis_cost_runs.py KIND REDIS_URL NAMESPACE JOBS WORK IDLE_US_PER_S ATTRIBUTE

``KIND``: ``floor`` (raw streams: XADD pipelined, XREADGROUP COUNT 100, XACK per batch), ``plain``
(non-streamed no-op jobs) or ``stream`` (``STREAM_CHUNKS`` chunks each). ``plain`` and ``stream``
enqueue JOBS jobs through ``Broker`` from this process, then one ``noop_worker.py`` process drains
them: the whole life of a job (enqueue, claim, events, finish, index, the worker's heartbeats and
reclaims meanwhile), as one ``INFO`` delta. ``ATTRIBUTE`` > 0: a second, smaller drain of that many
jobs with ``SLOWLOG`` logging every command, resolved per script (its own run: keeping the log
costs Redis CPU, which the first figure must not include). Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import uvloop
from broker_bench import enqueue_many, stop_process
from noop_jobs import DRAIN_CONCURRENCY, in_chunks, new_job, start_noop_worker
from redis.asyncio import Redis
from redis_accounting import (
    Delta,
    attribute,
    attribution_rows,
    delta,
    load_scripts,
    script_names,
    snap,
)
from stack import POOL, config_tree, write_config

from anygate.broker import Broker, create_redis, new_job_id
from anygate.config import parse_config

STREAM_CHUNKS = 20
BENCH_CLIENT = "redis-cost-bench"
"""The name of this process's own polling connection: its commands are left out of SLOWLOG rows."""
SLOWLOG_MAX = 1_000_000
FLOOR_STREAM, FLOOR_GROUP = "floor:jobs", "floor"


def per_job(d: Delta, jobs: int) -> dict[str, Any]:
    calls, usec = d.of("evalsha")
    return {
        "jobs": jobs,
        "seconds": d.seconds,
        "jobs_per_s": jobs / d.seconds,
        "cpu_us_per_job": d.cpu_us / jobs,
        "process_cpu_us_per_job": d.process_cpu_us / jobs,
        "evalsha_calls_per_job": calls / jobs,
        "evalsha_us_per_job": usec / jobs,
        "commands": {k: {"calls": c, "usec": u} for k, (c, u) in sorted(d.commands.items())},
    }


async def floor(redis_url: str, jobs: int, idle: float) -> dict[str, Any]:
    """Raw redis-py streams, no framework: the least Redis can spend on a queued job."""
    redis = Redis.from_url(redis_url, client_name=BENCH_CLIENT)
    try:
        await redis.xgroup_create(FLOOR_STREAM, FLOOR_GROUP, id="0", mkstream=True)
        before = await snap(redis)
        for start in range(0, jobs, 1000):
            async with redis.pipeline(transaction=False) as pipe:
                for _ in range(min(1000, jobs - start)):
                    pipe.xadd(FLOOR_STREAM, {"f": "noop"})
                await pipe.execute()
        done = 0
        while done < jobs:
            got = await redis.xreadgroup(FLOOR_GROUP, "c1", {FLOOR_STREAM: ">"}, count=100)
            ids = [mid for mid, _fields in got[0][1]]
            await redis.xack(FLOOR_STREAM, FLOOR_GROUP, *ids)
            done += len(ids)
        return per_job(delta(before, await snap(redis), idle), jobs)
    finally:
        await redis.aclose()


async def _enqueue(broker: Broker, jobs: int, stream: bool) -> None:
    if not stream:
        await enqueue_many(broker, jobs)
        return
    shard = broker.keys.shard_of_pool(POOL)
    await in_chunks(
        [new_job_id(shard) for _ in range(jobs)], lambda j: broker.enqueue(new_job(True), j)
    )


async def drain(
    redis_url: str, namespace: str, work: Path, jobs: int, stream: bool, idle: float
) -> dict[str, Any]:
    """Enqueue ``jobs``, drain them with one no-op worker process: one ``INFO`` delta."""
    tree = config_tree(redis_url, namespace)
    config = parse_config(tree)
    cfg_path = write_config(work / f"{namespace}.yaml", tree)
    redis = create_redis(config.redis)
    poll = Redis.from_url(redis_url, client_name=BENCH_CLIENT, decode_responses=True)
    broker = Broker(redis, config)
    proc = None
    try:
        await load_scripts(poll)
        before = await snap(poll)
        await _enqueue(broker, jobs, stream)
        chunks = STREAM_CHUNKS if stream else 0
        log = work / f"{namespace}-noop.log"
        proc = await start_noop_worker(cfg_path, log, DRAIN_CONCURRENCY, POOL, chunks)
        stats_key = broker.keys.stats(POOL)
        deadline = time.monotonic() + 60 + jobs / 200
        while True:
            stats = await poll.hmget(stats_key, ["queued", "inflight"])
            if all(int(v or 0) == 0 for v in stats):
                break
            if proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"drain did not finish: {stats}, worker rc {proc.returncode}")
            await asyncio.sleep(0.02)
        return per_job(delta(before, await snap(poll), idle), jobs)
    finally:
        if proc is not None:
            await stop_process(proc)
        await redis.aclose()
        await poll.aclose()


async def attributed(
    redis_url: str, namespace: str, work: Path, jobs: int, stream: bool
) -> dict[str, Any]:
    """The same drain with every command in SLOWLOG: calls and µs per job of each script."""
    admin = Redis.from_url(redis_url, client_name=BENCH_CLIENT, decode_responses=True)
    try:
        await admin.config_set("slowlog-max-len", SLOWLOG_MAX)
        await admin.slowlog_reset()
        await admin.config_set("slowlog-log-slower-than", 0)
        await drain(redis_url, namespace, work, jobs, stream, 0.0)
        await admin.config_set("slowlog-log-slower-than", 10_000)
        entries = await admin.slowlog_get(SLOWLOG_MAX)
        await admin.slowlog_reset()
    finally:
        await admin.aclose()
    ours = [e for e in entries if _name(e) != BENCH_CLIENT]
    found = attribute(ours, script_names())
    rows = attribution_rows(found, jobs)
    for row in rows:
        row["calls_per_job"] = row.pop("calls_per_request")
        row["us_per_job"] = row.pop("us_per_request")
    return {
        "jobs": jobs,
        "complete": len(entries) < SLOWLOG_MAX,
        "command_us_per_job": sum(r["us_per_job"] for r in rows),
        "rows": rows,
        "inner_calls_per_job": {k: v / jobs for k, v in sorted(found["inner"].items())},
    }


def _name(entry: dict[str, Any]) -> str:
    name = entry.get("client_name", "")
    return name.decode() if isinstance(name, bytes) else str(name)


async def main(argv: list[str]) -> dict[str, Any]:
    kind, redis_url, namespace, jobs, work, idle, attribute_jobs = argv
    n, idle_rate, path = int(jobs), float(idle), Path(work)
    if kind == "floor":
        return await floor(redis_url, n, idle_rate)
    if kind not in ("plain", "stream"):
        raise SystemExit(f"KIND must be floor, plain or stream, not {kind!r}")
    stream = kind == "stream"
    out = await drain(redis_url, namespace, path, n, stream, idle_rate)
    if int(attribute_jobs) > 0:
        out["attribution"] = await attributed(
            redis_url, f"{namespace}a", path, int(attribute_jobs), stream
        )
    return out


if __name__ == "__main__":
    print(json.dumps(uvloop.run(main(sys.argv[1:]))), flush=True)
