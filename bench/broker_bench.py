"""Broker-only scenarios: bulk enqueue, no-op drain, round trip and Redis memory per job.

These call ``Broker`` from this process (the enqueue side) and drain with ``noop_worker.py`` in a
process of its own (the worker side, as in production), so they measure the queue and nothing
of HTTP or an upstream. Each repetition uses a fresh namespace so one never sees another's jobs.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from stack import POOL, TENANT, config_tree, write_config

from anygate.broker import Broker, NewJob, Subscriptions, create_redis, new_job_id
from anygate.broker.durability import DurabilityBarrier, Mode
from anygate.config import Priority, parse_config

HERE = Path(__file__).resolve().parent
BODY = json.dumps(
    {"model": "bench-model", "messages": [{"role": "user", "content": "x" * 120}]}
).encode()
CHUNK = 1000


def new_job() -> NewJob:
    return NewJob(
        tenant=TENANT,
        pool=POOL,
        endpoint="/v1/chat/completions",
        model="bench-model",
        body=BODY,
        priority=Priority.STANDARD,
        stream=False,
    )


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc), start-up included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # USER_HZ is 100 on Linux


async def stop_process(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await asyncio.wait_for(proc.wait(), 5)


async def redis_cpu_s(redis: Redis) -> float:
    info = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def enqueue_many(broker: Broker, n: int) -> list[str]:
    """``n`` enqueues issued ``CHUNK`` at a time in one gather: the broker pipelines each chunk."""
    ids: list[str] = []
    for start in range(0, n, CHUNK):
        shard = broker.keys.shard_of_pool(POOL)
        batch = [new_job_id(shard) for _ in range(min(CHUNK, n - start))]
        await asyncio.gather(*(broker.enqueue(new_job(), j) for j in batch))
        ids += batch
    return ids


async def bulk_enqueue(redis_url: str, namespace: str, n: int) -> dict[str, Any]:
    redis = create_redis(parse_config(config_tree(redis_url, namespace)).redis)
    try:
        broker = Broker(redis, parse_config(config_tree(redis_url, namespace)))
        t0 = time.perf_counter()
        await enqueue_many(broker, n)
        seconds = time.perf_counter() - t0
    finally:
        await redis.aclose()
    return {"jobs": n, "seconds": seconds, "jobs_per_s": n / seconds}


async def drain_and_round_trip(
    redis_url: str,
    namespace: str,
    work: Path,
    n: int,
    concurrency: int,
    samples: int,
    durability: Mode = "standard",
) -> dict[str, Any]:
    """Backlog of ``n`` first, then one no-op worker process: first start → last finish.

    CPU per job: the worker's includes its start-up (it drains from the moment it starts),
    Redis's is the ``INFO cpu`` delta over the drain.

    With the worker still running, ``samples`` single jobs one at a time: enqueue → completed
    event seen through pub/sub (in ``strict`` durability, then the barrier an API process
    waits for before it tells a client, as in ``api/sync_call.py``).
    """
    tree = config_tree(redis_url, namespace)
    config = parse_config(tree)
    cfg_path = write_config(work / f"{namespace}.yaml", tree)
    redis = create_redis(config.redis)
    broker = Broker(redis, config)
    out: dict[str, Any] = {"jobs": n, "concurrency": concurrency}
    ids = await enqueue_many(broker, n)
    redis_cpu = await redis_cpu_s(redis)
    with (work / f"{namespace}-noop.log").open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(HERE / "noop_worker.py"),
            str(cfg_path),
            str(concurrency),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 60 + n / 500  # 500 jobs/s would be a failure
        while True:
            stats = await broker.pool_stats(POOL)
            if int(stats.get("queued", 0)) == 0 and int(stats.get("inflight", 0)) == 0:
                break
            if proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"drain did not finish: {stats}, worker rc {proc.returncode}")
            await asyncio.sleep(0.05)
        first = await broker.get(TENANT, ids[0])
        assert first is not None
        assert first.started_ms is not None
        last_ms = 0
        for chunk in range(0, n, CHUNK):
            async with redis.pipeline(transaction=False) as pipe:
                for j in ids[chunk : chunk + CHUNK]:
                    pipe.hget(broker.keys.job(j), "finished_ms")
                last_ms = max([last_ms, *(int(v) for v in await pipe.execute())])
        out["jobs_per_s"] = n / ((last_ms - first.started_ms) / 1000)
        out["worker_cpu_us_per_job"] = process_cpu_s(proc.pid) / n * 1e6
        out["redis_cpu_us_per_job"] = (await redis_cpu_s(redis) - redis_cpu) / n * 1e6
        out.update(await _round_trips(broker, redis, samples, DurabilityBarrier(redis, durability)))
    finally:
        await stop_process(proc)
        await redis.aclose()
    return out


async def _round_trips(
    broker: Broker, redis: Redis, samples: int, barrier: DurabilityBarrier
) -> dict[str, float]:
    subs = Subscriptions(redis)
    await subs.start()
    rtts: list[float] = []
    try:
        for i in range(samples + 10):
            job_id = new_job_id(broker.keys.shard_of_pool(POOL))
            async with subs.subscribe(broker.keys.job_channel(job_id)) as queue:
                t = time.perf_counter()
                await broker.enqueue(new_job(), job_id)
                while "\ncompleted\n" not in await asyncio.wait_for(queue.get(), 10):
                    pass
                await barrier()
                if i >= 10:
                    rtts.append((time.perf_counter() - t) * 1000)
    finally:
        await subs.close()
    rtts.sort()
    return {
        "round_trip_p50_ms": statistics.median(rtts),
        "round_trip_p99_ms": rtts[min(len(rtts) - 1, int(0.99 * len(rtts)))],
    }


async def _used_memory(redis: Redis) -> tuple[int, int]:
    """``used_memory`` as is and net of client and AOF buffers, once no AOF rewrite runs.

    Without this, one repetition in three could read several MB of a pipeline's query buffer or
    of a rewrite in progress as "memory per job".
    """
    for _ in range(200):
        persistence = await redis.info("persistence")
        if not (persistence["aof_rewrite_in_progress"] or persistence["aof_rewrite_scheduled"]):
            break
        await asyncio.sleep(0.05)
    memory = await redis.info("memory")
    used = int(memory["used_memory"])
    return used, used - int(memory["mem_clients_normal"]) - int(memory["mem_aof_buffer"])


async def memory_per_job(redis_url: str, namespace: str, n: int) -> dict[str, Any]:
    """Memory delta over ``n`` queued jobs (nobody drains them), minus the payload."""
    config = parse_config(config_tree(redis_url, namespace))
    redis = create_redis(config.redis)
    try:
        before = await _used_memory(redis)
        await enqueue_many(Broker(redis, config), n)
        after = await _used_memory(redis)
    finally:
        await redis.aclose()
    raw, net = ((a - b) / n for a, b in zip(after, before, strict=True))
    return {
        "jobs": n,
        "payload_bytes": len(BODY),
        "used_memory_bytes_per_job": raw,
        "bytes_per_job": net,
        "overhead_bytes_per_job": net - len(BODY),
    }
