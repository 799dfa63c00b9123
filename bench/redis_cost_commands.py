"""What each script spends per job, command by command: ``INFO commandstats`` around each phase.

    python bench/redis_cost_commands.py              # 3,000 non-streamed jobs
    python bench/redis_cost_commands.py --jobs 10000

Against a private redis-server (AOF everysec, as every bench here), N jobs go through their
whole life driven by one ``Broker`` in this process, phase by phase, as the API and a worker
would call it: enqueued 64 at a time (one event-loop turn each, as an API process under load),
claimed 32 at a time, finished 32 at a time (a claim's jobs ending together). Around each phase,
``INFO commandstats``: ``evalsha`` is the scripts' whole time, the commands they ran are also
counted on their own (inside that time); what ``evalsha`` spends beyond its commands is the Lua
interpreter and the conversions between Lua and Redis values of each ``redis.call`` (feeding the
AOF comes after a command's measured time, in neither figure). No SLOWLOG, no worker process:
the figures are the scripts' own, not the drain's (that is ``redis_cost.py``'s ``Redis CPU per
job``, which also holds Redis's event loop, sockets and the AOF).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path

import click
import redis
import structlog
from stack import MODEL, POOL, TENANT, config_tree

from anygate.broker import Broker, NewJob, create_redis, new_job_id
from anygate.config import Priority, parse_config
from anygate.ops.embedded_redis import EmbeddedRedis

Stats = dict[str, tuple[int, int]]
BODY = b'{"model":"bench-model","messages":[{"role":"user","content":"hi"}]}'


def _stats(r: redis.Redis) -> Stats:
    info = r.info("commandstats")
    return {k.removeprefix("cmdstat_"): (v["calls"], v["usec"]) for k, v in info.items()}


def _table(name: str, before: Stats, after: Stats, jobs: int) -> None:
    rows = []
    for cmd, (calls, usec) in after.items():
        c0, u0 = before.get(cmd, (0, 0))
        if calls > c0 and cmd not in ("info", "config|resetstat"):
            rows.append((usec - u0, cmd, calls - c0))
    rows.sort(reverse=True)
    inner = sum(u for u, cmd, _ in rows if cmd not in ("evalsha", "script|load"))
    script = sum(u for u, cmd, _ in rows if cmd == "evalsha")
    print(
        f"\n{name}: scripts {script / jobs:.1f} µs/job, of which their commands "
        f"{inner / jobs:.1f} and the rest (Lua, conversions) {(script - inner) / jobs:.1f}"
    )
    print("| command | calls/job | µs/job | µs/call |\n|---|---:|---:|---:|")
    for usec, cmd, calls in rows:
        print(f"| {cmd} | {calls / jobs:.2f} | {usec / jobs:.2f} | {usec / calls:.2f} |")


async def _drive(url: str, jobs: int) -> None:
    config = parse_config(config_tree(url, "cost"))
    client = create_redis(config.redis)
    broker = Broker(client, config)
    r = redis.Redis.from_url(url, decode_responses=True)
    shard = broker.keys.shard_of_pool(POOL)

    def new() -> NewJob:
        return NewJob(
            tenant=TENANT,
            pool=POOL,
            endpoint="/v1/chat/completions",
            model=MODEL,
            body=BODY,
            priority=Priority.STANDARD,
            tenant_weight=1,
        )

    before = _stats(r)
    for start in range(0, jobs, 64):
        n = min(64, jobs - start)
        await asyncio.gather(*(broker.enqueue(new(), new_job_id(shard)) for _ in range(n)))
    after = _stats(r)
    _table("enqueue", before, after, jobs)
    claimed = []
    before = after
    while len(claimed) < jobs:
        claimed += await broker.claim(POOL, "w1", 32)
    after = _stats(r)
    _table("claim", before, after, jobs)
    before = after
    for start in range(0, jobs, 32):
        await asyncio.gather(
            *(
                broker.finish(j, POOL, succeeded=True, result={"object": "noop"})
                for j in claimed[start : start + 32]
            )
        )
    _table("finish", before, _stats(r), jobs)
    await client.aclose()


@click.command()
@click.option("--jobs", type=int, default=3000, show_default=True)
def main(jobs: int) -> None:
    """Per-command cost of each script per job (see redis_cost_commands.py)."""
    # the worker's per-job lines would bury the tables
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp), aof=True) as server:
        asyncio.run(_drive(server.url, jobs))


if __name__ == "__main__":
    main()
