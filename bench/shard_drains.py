"""Jobs/s per shard: 1 pool on 1 shard against 3 pools on 3 shards of a local 3-master Redis
Cluster (``anygate.ops.redis_cluster``), no-op drains, part 5 of ``capacity.py``.

Each pool's shard (``pools.<name>.shard``) is a hash tag chosen to land on a master of its own;
each pool gets one no-op worker process. Reported per configuration: jobs/s per shard and in
all, each master's Redis CPU per job and busy share, each worker's busy share, and the whole
machine's busy cores, which say what bound the drain.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import report
import uvloop
from broker_bench import process_cpu_s, stop_process
from noop_jobs import (
    DRAIN_CONCURRENCY,
    SETTLE_S,
    in_chunks,
    log_tails,
    new_job,
    start_noop_worker,
)
from redis.asyncio import Redis
from redis.crc import key_slot
from redis_accounting import delta, snap
from stack import POOL, config_tree, write_config

from anygate.broker import Broker, create_redis, new_job_id
from anygate.broker.keys import shard_prefix
from anygate.config import parse_config
from anygate.ops.redis_cluster import LocalRedisCluster, slot_ranges

SHARD_POOLS = ("p0", "p1", "p2")


def machine_busy_s() -> float:
    """CPU seconds every core of the machine has been busy (``/proc/stat``), all processes."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def shard_names(namespace: str, masters: int) -> list[str]:
    """One shard name per master of a ``LocalRedisCluster``: the first of ``s0``, ``s1`` … whose
    hash tag lands in that master's slot range, so each pool's keys live on a master of its own."""

    found: dict[int, str] = {}
    for i in range(100_000):
        slot = key_slot(shard_prefix(namespace, f"s{i}").encode())
        for master, (low, high) in enumerate(slot_ranges(masters)):
            if low <= slot <= high:
                found.setdefault(master, f"s{i}")
        if len(found) == masters:
            return [found[m] for m in range(masters)]
    raise RuntimeError("no shard name for every master")


def cluster_tree(url: str, namespace: str, shards: dict[str, str]) -> dict[str, Any]:
    """``stack.config_tree`` in cluster mode, with one provider (so one pool) per entry of
    ``shards`` (pool → shard)."""
    tree = config_tree(url, namespace)
    provider = tree["providers"][POOL]
    tree["redis"]["mode"] = "cluster"
    tree["providers"] = {pool: provider for pool in shards}
    tree["models"] = {
        f"model-{pool}": {"deployments": [{"provider": pool, "model": "mock-model"}]}
        for pool in shards
    }
    tree["pools"] = {pool: {"shard": shard} for pool, shard in shards.items()}
    return tree


async def _enqueue_pool(broker: Broker, pool: str, shard: str, n: int) -> None:
    job = replace(new_job(False), pool=pool, model=f"model-{pool}")
    await in_chunks(list(range(n)), lambda _: broker.enqueue(job, new_job_id(shard)))


async def _drains(
    broker: Broker,
    shards: dict[str, str],
    n: int,
    workers: list[asyncio.subprocess.Process],
    work: Path,
    label: str,
) -> tuple[dict[str, float], dict[str, float], float, float]:
    """Poll every pool until it is drained: when each one's first claim and last finish were
    seen, and at the first claim of all the machine's busy CPU seconds and the workers'."""
    first: dict[str, float] = {}
    done: dict[str, float] = {}
    busy_first = workers_first = 0.0
    deadline = time.monotonic() + 60 + n / 200
    while len(done) < len(shards):
        for pool in shards:
            if pool in done:
                continue
            stats = await broker.pool_stats(pool)
            queued, inflight = int(stats.get("queued", 0)), int(stats.get("inflight", 0))
            now = time.perf_counter()
            if pool not in first and (queued < n or inflight):
                if not first:  # the machine's CPU from the first claim of all
                    busy_first = machine_busy_s()
                    workers_first = sum(process_cpu_s(w.pid) for w in workers)
                first[pool] = now
            if pool in first and queued == 0 and inflight == 0:
                done[pool] = now
        if time.monotonic() > deadline or any(w.returncode is not None for w in workers):
            tails = log_tails(work, f"{label}-*-noop.log")
            raise RuntimeError(f"{label}: drain did not finish ({done} of {list(shards)})\n{tails}")
        await asyncio.sleep(0.02)
    return first, done, busy_first, workers_first


async def drain_shards(
    url: str, nodes: dict[str, int], work: Path, shards: dict[str, str], n: int, label: str
) -> dict[str, Any]:
    """``n`` jobs queued in each pool, then one no-op worker per pool (concurrency 64), all at
    once: each pool's drain from its first claim to its last finish, and each node's Redis CPU.

    ``nodes``: shard → port of the master that holds it."""
    tree = cluster_tree(url, label, shards)
    config = parse_config(tree)
    cfg_path = write_config(work / f"{label}.yaml", tree)
    redis = create_redis(config.redis)
    broker = Broker(redis, config)
    node_clients = {shard: Redis(port=nodes[shard]) for shard in shards.values()}
    workers: list[asyncio.subprocess.Process] = []
    try:
        for pool, shard in shards.items():
            await _enqueue_pool(broker, pool, shard, n)
        await asyncio.sleep(SETTLE_S)
        before = {shard: await snap(c) for shard, c in node_clients.items()}
        for pool in shards:
            log = work / f"{label}-{pool}-noop.log"
            workers.append(await start_noop_worker(cfg_path, log, DRAIN_CONCURRENCY, pool))
        first, done, busy_first, workers_first = await _drains(
            broker, shards, n, workers, work, label
        )
        busy = machine_busy_s() - busy_first
        workers_busy = sum(process_cpu_s(w.pid) for w in workers) - workers_first
        span = max(done.values()) - min(first.values())
        after = {shard: await snap(c) for shard, c in node_clients.items()}
    finally:
        for proc in workers:
            await stop_process(proc)
        for client in node_clients.values():
            await client.aclose()
        await redis.aclose()
    per_pool = {}
    for pool, shard in shards.items():
        d = delta(before[shard], after[shard])
        # a claim takes up to 32 jobs a call and a finish call carries up to 64 (coalesced)
        if d.of("evalsha")[0] < n / 64:
            raise RuntimeError(f"{label}: pool {pool}'s scripts did not run on its master")
        seconds = done[pool] - first[pool]
        per_pool[pool] = {
            "shard": shard,
            "node_port": nodes[shard],
            "jobs_per_s": n / seconds,
            "redis_cpu_us_per_job": d.cpu_us / n,
            "redis_busy_share": d.cpu_us / 1e6 / seconds,
        }
    return {
        "pools": per_pool,
        "jobs": n * len(shards),
        "jobs_per_s": n * len(shards) / span,
        "jobs_per_s_per_shard": n * len(shards) / span / len(shards),
        "redis_cpu_us_per_job": statistics.mean(
            p["redis_cpu_us_per_job"] for p in per_pool.values()
        ),
        "redis_busy_pct": 100 * statistics.mean(p["redis_busy_share"] for p in per_pool.values()),
        "machine_busy_cores": busy / span,
        "worker_busy_pct": 100 * workers_busy / span / len(shards),
        "cores": os.cpu_count(),
    }


SHARD_FIGURES = [
    ("jobs_per_s_per_shard", "drain, jobs/s per shard", "jobs/s"),
    ("jobs_per_s", "drain, jobs/s in all", "jobs/s"),
    ("redis_cpu_us_per_job", "Redis CPU per job (on its shard)", "µs"),
    ("redis_busy_pct", "Redis main thread busy, each master", "%"),
    ("worker_busy_pct", "no-op worker process busy, each", "%"),
    ("machine_busy_cores", "machine busy (all its processes)", "cores"),
]


def shard_scaling(work: Path, n: int, reps: int) -> dict[str, Any]:
    """One 3-master local cluster: 1 pool on one master, then 3 pools on 3 masters, ``reps``
    times back to back; medians and the 3 ÷ 1 ratio (``report.side_by_side``)."""
    samples: dict[str, dict[str, list[float]]] = {
        "one": defaultdict(list),
        "three": defaultdict(list),
    }
    runs: list[dict[str, Any]] = []
    with LocalRedisCluster(work / "cluster", masters=3) as cluster:
        for rep in range(reps):
            order = (("one", 1), ("three", 3))
            for config, count in order if rep % 2 == 0 else order[::-1]:
                label = f"{config}{rep}"
                names = shard_names(label, 3)
                shards = dict(zip(SHARD_POOLS[:count], names[:count], strict=True))
                nodes = {
                    s: cluster.node_of_slot(key_slot(shard_prefix(label, s).encode())).port
                    for s in names
                }
                result = uvloop.run(drain_shards(cluster.url, nodes, work, shards, n, label))
                runs.append({"config": config, "rep": rep, **result})
                for key, _label, _unit in SHARD_FIGURES:
                    samples[config][key].append(result[key])
                print(
                    f"[capacity] {config} shard(s), rep {rep + 1}: "
                    f"{result['jobs_per_s_per_shard']:,.0f} jobs/s per shard, "
                    f"machine {result['machine_busy_cores']:.2f} cores busy",
                    flush=True,
                )
    figures = report.side_by_side(
        {k: dict(v) for k, v in samples.items()}, SHARD_FIGURES, (("three", "one"),)
    )
    return {"jobs_per_pool": n, "reps": reps, "figures": figures, "runs": runs}


def shard_table(figures: dict[str, Any]) -> str:
    out = [
        "| figure | 1 pool, 1 shard | 3 pools, 3 shards | 3 ÷ 1 (paired) |",
        "|---|---:|---:|---:|",
    ]
    for key, label, unit in SHARD_FIGURES:
        row = figures[key]
        ratio = row["three_over_one"]
        out.append(
            f"| {label} | {report.median_cell(row['one'], unit)} "
            f"| {report.median_cell(row['three'], unit)} "
            f"| {ratio['of_medians']:.2f} ({ratio['paired_median']:.2f}) |"
        )
    return "\n".join(out)
