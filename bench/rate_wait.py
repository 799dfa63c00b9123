"""What waiting on a rate limit costs (issue 18, item 6): N jobs behind one deployment limited to
``--rpm`` requests per (compressed) minute; Redis script calls, Redis CPU and requeues per
admitted job.

    python bench/rate_wait.py                 # 500 jobs, 60 rpm over a 6 s minute (~50 s)
    python bench/rate_wait.py --jobs 200 --minute-s 3

A job refused for lack of room joins the limit's waiting line and is delayed until its own turn
(one room per waiter, ``rate_window.py``); before that line, every waiter was delayed until the
oldest entry of the window expired, all woke at once, one got in and the others were refused and
delayed again. This script counts what an admission costs: every script call by name
(``SLOWLOG`` at 0 µs, drained every 0.2 s; the commands scripts run inside are not counted
twice, see redis_accounting.attribute) and ``INFO cpu`` around the run. Time is compressed
(``queue.rate_limit_minute_s``) as in tests/integration/test_provider_limits_held.py; the
deployment's 60 rpm then mean 60 calls per ``--minute-s``.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import click
import httpx
import redis_accounting as acct
import report
import uvloop
from redis.asyncio import Redis
from stack import KEY, MODEL, POOL, Stack, config_tree

from anygate.broker import KeySpace
from anygate.broker.connection import awaited
from anygate.ops.embedded_redis import EmbeddedRedis
from anygate.ops.processes import free_port

HERE = Path(__file__).resolve().parent
SLOWLOG_MAX = 100_000


def settings(redis_url: str, namespace: str, rpm: int, minute_s: float) -> dict[str, Any]:
    models = config_tree(redis_url, namespace)["models"]
    models[MODEL]["deployments"][0]["rpm"] = rpm
    return {
        "models": models,
        "queue": {"rate_limit_minute_s": minute_s, "rate_limit_window_s": minute_s},
    }


async def _submit(api_url: str, n: int) -> list[str]:
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "wait"}]}
    body = {"endpoint": "/v1/chat/completions", "body": chat}
    headers = {"authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=30) as client:
        sem = asyncio.Semaphore(32)

        async def one() -> str:
            async with sem:
                answer = await client.post("/v1/jobs", json=body)
                answer.raise_for_status()
                return str(answer.json()["id"])

        return list(await asyncio.gather(*(one() for _ in range(n))))


async def _drain_slowlog(redis: Redis, into: list[dict[str, Any]], stop: asyncio.Event) -> None:
    while True:
        async with redis.pipeline(transaction=True) as pipe:  # nothing logged in between is lost
            pipe.slowlog_get(SLOWLOG_MAX)
            pipe.slowlog_reset()
            entries, _ok = await pipe.execute()
        into.extend(entries)
        if stop.is_set():
            return
        await asyncio.sleep(0.2)


async def _wait_done(redis: Redis, stack: Stack, n: int, timeout_s: float) -> float:
    """Seconds until the pool has nothing queued or in flight (every job ended)."""
    key = KeySpace(stack.namespace).stats(POOL)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        queued, inflight = await awaited(redis.hmget(key, ["queued", "inflight"]))
        if int(queued or 0) + int(inflight or 0) == 0:
            return time.monotonic() - t0
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{n} jobs did not end within {timeout_s} s")


async def measure(stack: Stack, redis_url: str, jobs: int, timeout_s: float) -> dict[str, Any]:
    redis = Redis.from_url(redis_url)
    try:
        await acct.load_scripts(redis)
        idle = await acct.idle_rate(redis)
        await redis.config_set("slowlog-max-len", SLOWLOG_MAX)
        await redis.config_set("slowlog-log-slower-than", 0)
        await redis.slowlog_reset()
        entries: list[dict[str, Any]] = []
        stop = asyncio.Event()
        drain = asyncio.create_task(_drain_slowlog(redis, entries, stop))
        before = await acct.snap(redis)
        await _submit(stack.api_url, jobs)
        seconds = await _wait_done(redis, stack, jobs, timeout_s)
        after = await acct.snap(redis)
        stop.set()
        await drain
        await redis.config_set("slowlog-log-slower-than", 10_000)
        async with httpx.AsyncClient(timeout=10) as client:
            mock = (await client.get(f"{stack.mock_url}/_mock/requests")).json()["data"]
    finally:
        await redis.aclose()
    found = acct.attribute(entries, acct.script_names())
    d = acct.delta(before, after, idle)
    calls: Counter[str] = Counter(found["calls"])
    admitted = len(mock)
    per = max(admitted, 1)
    scripts = {k: v for k, v in calls.items() if k.startswith("script ")}
    return {
        "jobs": jobs,
        "admitted_upstream_calls": admitted,
        "seconds": round(seconds, 2),
        "script_calls": dict(scripts),
        "script_calls_per_admitted_job": round(sum(scripts.values()) / per, 2),
        "ratewindow_calls_per_admitted_job": round(calls["script ratewindow"] / per, 2),
        "claims_per_admitted_job": round(calls["script claim"] / per, 2),
        "requeues_per_job": round(calls["script requeue"] / per, 2),
        "redis_cpu_us_per_admitted_job": round(d.cpu_us / per, 1),
        "redis_cpu_s": round(d.cpu_us / 1e6, 3),
        "script_usec": {k: v for k, v in found["usec"].items() if k.startswith("script ")},
        "slowlog_entries": len(entries),
        "evalsha_calls_commandstats": d.of("evalsha")[0],
        "note": "Redis CPU includes logging every command to SLOWLOG (0 µs threshold)",
    }


def table(r: dict[str, Any]) -> str:
    rows = [
        ("jobs (all admitted once)", f"{r['jobs']} ({r['admitted_upstream_calls']} calls)"),
        ("wall", f"{r['seconds']} s"),
        ("script calls per admitted job", str(r["script_calls_per_admitted_job"])),
        ("  ratewindow per admitted job", str(r["ratewindow_calls_per_admitted_job"])),
        ("  claim per admitted job", str(r["claims_per_admitted_job"])),
        ("  requeue per job", str(r["requeues_per_job"])),
        ("Redis CPU per admitted job", f"{r['redis_cpu_us_per_admitted_job']} µs"),
        ("script calls", json.dumps(r["script_calls"])),
    ]
    return "\n".join(f"{k:<32} {v}" for k, v in rows)


@click.command()
@click.option("--jobs", type=click.IntRange(1), default=500, show_default=True)
@click.option("--rpm", type=click.IntRange(1), default=60, show_default=True)
@click.option("--minute-s", type=click.FloatRange(0.5, 60), default=6.0, show_default=True)
@click.option("--concurrency", type=click.IntRange(1), default=64, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="[bench/results/ratewait-<day>.json]")
def main(jobs: int, rpm: int, minute_s: float, concurrency: int, out: Path | None) -> None:
    """N jobs behind one rate-limited deployment: script calls and Redis CPU per admitted job."""
    timeout_s = 60 + 3 * minute_s * jobs / rpm
    with tempfile.TemporaryDirectory(prefix="anygate-ratewait-") as tmp:
        work = Path(tmp)
        with EmbeddedRedis(work / "redis", aof=True) as redis_server:
            stack = Stack(redis_server.url, "rw", work)
            stack.settings = settings(redis_server.url, "rw", rpm, minute_s)
            try:
                stack.start_mock(free_port(), "--request-log-size", str(jobs * 2))
                stack.start_api(free_port())
                stack.start_worker(POOL, concurrency)
                result = uvloop.run(measure(stack, redis_server.url, jobs, timeout_s))
            finally:
                stack.close()
    result |= {"rpm": rpm, "minute_s": minute_s, "concurrency": concurrency}
    path = out or report.results_path(HERE / "results", prefix="ratewait-")
    report.write(path, result)
    click.echo(table(result))
    click.echo(f"written to {path}")


if __name__ == "__main__":
    main()
