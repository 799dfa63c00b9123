"""anygate benchmark (SPEC §7): prints a table and writes JSON to bench/results/.

    python bench/run.py                # full run (~1 min)
    python bench/run.py --quick        # smaller N, to check that it works

Everything runs on loopback against servers this script starts on free ports and stops by pid:
a private redis-server (AOF everysec, as `anygate dev` runs it), a no-op worker process, the API
process, and wrk as the HTTP load generator (httpx when wrk is not installed, which is slower).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import httpx
import uvloop
import yaml

from anygate.api.auth import hash_key
from anygate.broker import Broker, NewJob, Subscriptions, create_redis, new_job_id
from anygate.config import Priority, parse_config
from anygate.ops.embedded_redis import EmbeddedRedis, free_port

HERE = Path(__file__).resolve().parent
KEY = "sk-bench-0123456789"
BODY = json.dumps(
    {"model": "bench-model", "messages": [{"role": "user", "content": "x" * 120}]}
).encode()


def config_tree(redis_url: str, namespace: str) -> dict[str, Any]:
    return {
        "redis": {"url": redis_url, "namespace": namespace},
        "providers": {"bench": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "models": {"bench-model": {"deployments": [{"provider": "bench", "model": "noop"}]}},
        "tenants": [{"id": "bench", "api_key_sha256": [hash_key(KEY)]}],
    }


def new_job() -> NewJob:
    return NewJob(
        tenant="bench", pool="bench", endpoint="/v1/chat/completions", model="bench-model",
        body=BODY, priority=Priority.STANDARD, stream=False,
    )  # fmt: skip


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc), start-up included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def redis_cpu_s(redis: Any) -> float:
    info = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bench_broker(redis_url: str, work: Path, n: int, samples: int) -> dict[str, Any]:
    tree = config_tree(redis_url, "bench-broker")
    config = parse_config(tree)
    cfg_path = work / "broker.yaml"
    cfg_path.write_text(yaml.safe_dump(tree))
    redis = create_redis(config.redis)
    broker = Broker(redis, config)
    out: dict[str, Any] = {}

    # enqueue: N jobs, 100 concurrent calls (the queuebench rule for asyncio libraries)
    t0 = time.perf_counter()
    ids: list[str] = []
    for start in range(0, n, 100):
        batch = [new_job_id() for _ in range(min(100, n - start))]
        await asyncio.gather(*(broker.enqueue(new_job(), j) for j in batch))
        ids += batch
    out["enqueue_jobs_per_s"] = n / (time.perf_counter() - t0)

    # drain: backlog first, then one worker process; first start → last finish, from Redis
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "noop_worker.py"), str(cfg_path), "64"
    )
    redis_cpu_before = await redis_cpu_s(redis)
    try:
        while True:
            stats = await broker.pool_stats("bench")
            if int(stats.get("queued", 0)) == 0 and int(stats.get("inflight", 0)) == 0:
                break
            await asyncio.sleep(0.05)
        first = await broker.get("bench", ids[0])
        last_ms = 0
        for chunk in range(0, n, 1000):
            async with redis.pipeline(transaction=False) as pipe:
                for j in ids[chunk : chunk + 1000]:
                    pipe.hget(broker.keys.job(j), "finished_ms")
                last_ms = max([last_ms, *(int(v) for v in await pipe.execute())])
        assert first is not None
        assert first.started_ms is not None
        out["drain_jobs_per_s"] = n / ((last_ms - first.started_ms) / 1000)
        out["drain_worker_cpu_us_per_job"] = process_cpu_s(proc.pid) / n * 1e6
        out["drain_redis_cpu_us_per_job"] = (await redis_cpu_s(redis) - redis_cpu_before) / n * 1e6

        # round trip: one job at a time, enqueue → worker → result seen through pub/sub
        subs = Subscriptions(redis)
        await subs.start()
        rtts: list[float] = []
        for i in range(samples + 10):
            job_id = new_job_id()
            async with subs.subscribe(broker.keys.job_channel(job_id)) as queue:
                t = time.perf_counter()
                await broker.enqueue(new_job(), job_id)
                while "\ncompleted\n" not in await queue.get():
                    pass
                if i >= 10:
                    rtts.append((time.perf_counter() - t) * 1000)
        await subs.close()
        out["round_trip_p50_ms"] = statistics.median(rtts)
        out["round_trip_p99_ms"] = pct(rtts, 0.99)
    finally:
        proc.terminate()
        await proc.wait()

    # memory per queued job: a fresh namespace, N jobs, used_memory delta minus the payload
    mem_broker = Broker(redis, parse_config(config_tree(redis_url, "bench-mem")))
    before = (await redis.info("memory"))["used_memory"]
    for start in range(0, n, 100):
        await asyncio.gather(
            *(mem_broker.enqueue(new_job(), new_job_id()) for _ in range(min(100, n - start)))
        )
    after = (await redis.info("memory"))["used_memory"]
    out["payload_bytes"] = len(BODY)
    out["redis_bytes_per_queued_job"] = (after - before) / n
    out["overhead_bytes_per_queued_job"] = (after - before) / n - len(BODY)
    await redis.aclose()
    return out


def wrk_post(url: str, body: bytes, connections: int, seconds: int, work: Path) -> dict[str, Any]:
    script = work / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body.decode())}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {KEY}"\n'
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("JSON {\\"requests\\": %d, \\"duration_us\\": %d, '
        '\\"non2xx\\": %d, \\"p50_us\\": %d, \\"p99_us\\": %d}\\n", summary.requests, '
        "summary.duration, summary.errors.status, latency:percentile(50), "
        "latency:percentile(99)))\nend\n"
    )
    threads = min(2, connections)  # wrk wants at least one connection per thread
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("JSON "))
    data: dict[str, Any] = json.loads(line[5:])
    return {
        "requests_per_s": data["requests"] / (data["duration_us"] / 1e6),
        "p50_ms": data["p50_us"] / 1000,
        "p99_ms": data["p99_us"] / 1000,
        "non_2xx": data["non2xx"],
        "client": "wrk",
    }


async def httpx_post(url: str, body: bytes, connections: int, seconds: int) -> dict[str, Any]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=connections)) as client:

        async def loop() -> None:
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                await client.post(url, content=body, headers=headers)
                latencies.append((time.perf_counter() - t) * 1000)

        t0 = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(connections)))
        elapsed = time.perf_counter() - t0
    return {
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies),
        "p99_ms": pct(latencies, 0.99),
        "non_2xx": None,
        "client": "httpx",
    }


def _start(args: list[str], env: dict[str, str], ready: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(args, env={**env, "PATH": "/usr/bin:/bin"})
    for _ in range(400):
        try:
            if httpx.get(ready).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{args} never became ready")


def _registered(redis_url: str, pool: str, namespace: str) -> bool:
    import redis  # noqa: PLC0415 - sync client, only for this wait

    client = redis.Redis.from_url(redis_url)
    try:
        return bool(client.hlen(f"ag:{{{namespace}}}:workers:{pool}"))
    finally:
        client.close()


def first_chunk_p50_ms(url: str, body: bytes, samples: int) -> float:
    """Median time from sending a streamed request to its first ``data:`` line (one at a time;
    the client's own cost is the same for the direct and the gateway call, so it cancels out)."""
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    times: list[float] = []
    with httpx.Client(timeout=10) as client:
        for i in range(samples + 10):
            t = time.perf_counter()
            with client.stream("POST", url, content=body, headers=headers) as response:
                lines = response.iter_lines()
                for line in lines:
                    if line.startswith("data:"):
                        break
                if i >= 10:
                    times.append((time.perf_counter() - t) * 1000)
                for _ in lines:  # read to the end, so the connection is reused
                    pass
    return statistics.median(times)


def bench_sync(redis_url: str, work: Path, seconds: int) -> dict[str, Any]:
    """OpenAI-compatible chat through the queue vs. the same mock called directly (SPEC §7)."""
    mock_port, api_port = free_port(), free_port()
    mock = f"http://127.0.0.1:{mock_port}"
    tree = config_tree(redis_url, "bench-sync")
    tree["providers"]["bench"]["base_url"] = f"{mock}/v1"
    tree["providers"]["bench"]["api_key"] = "env:BENCH_MOCK_KEY"
    cfg_path = work / "sync.yaml"
    cfg_path.write_text(yaml.safe_dump(tree))
    env = {"ANYGATE_CONFIG": str(cfg_path), "BENCH_MOCK_KEY": "k"}
    me = [sys.executable, "-m", "anygate.ops"]
    procs = [
        _start([*me, "mock-provider", "--port", str(mock_port), "--chunk-count", "20"], env,
               f"{mock}/_mock/health"),
        _start([*me, "api", "--port", str(api_port)], env, f"http://127.0.0.1:{api_port}/readyz"),
    ]  # fmt: skip
    procs.append(subprocess.Popen([*me, "worker", "--pool", "bench", "--concurrency", "64"],
                                  env={**env, "PATH": "/usr/bin:/bin"}))  # fmt: skip
    try:
        while not _registered(redis_url, "bench", "bench-sync"):
            time.sleep(0.05)
        chat = json.loads(BODY)
        plain = json.dumps(chat).encode()
        streamed = json.dumps({**chat, "stream": True}).encode()
        direct_url = f"{mock}/v1/chat/completions"
        gateway_url = f"http://127.0.0.1:{api_port}/v1/chat/completions"
        direct_1 = wrk_post(direct_url, plain, 1, seconds, work)
        gateway_1 = wrk_post(gateway_url, plain, 1, seconds, work)
        direct_ttfc = first_chunk_p50_ms(direct_url, streamed, 200)
        gateway_ttfc = first_chunk_p50_ms(gateway_url, streamed, 200)
        gateway_64 = wrk_post(gateway_url, plain, 64, seconds, work)
        stream_64 = wrk_post(gateway_url, streamed, 64, seconds, work)
        return {
            "sync_direct_p50_ms": direct_1["p50_ms"],
            "sync_gateway_p50_ms": gateway_1["p50_ms"],
            "sync_added_p50_ms": gateway_1["p50_ms"] - direct_1["p50_ms"],
            "sync_added_p99_ms": gateway_1["p99_ms"] - direct_1["p99_ms"],
            "stream_added_first_chunk_p50_ms": gateway_ttfc - direct_ttfc,
            "sync_rps_64": gateway_64["requests_per_s"],
            "sync_non_2xx": gateway_64["non_2xx"],
            "stream_rps_64": stream_64["requests_per_s"],
            "stream_non_2xx": stream_64["non_2xx"],
        }
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=30)


def bench_api(redis_url: str, work: Path, seconds: int) -> dict[str, Any]:
    tree = config_tree(redis_url, "bench-api")
    cfg_path = work / "api.yaml"
    cfg_path.write_text(yaml.safe_dump(tree))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "anygate.ops", "api", "--port", str(port)],
        env={"ANYGATE_CONFIG": str(cfg_path), "PATH": "/usr/bin:/bin"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        payload = json.dumps(
            {"endpoint": "/v1/chat/completions", "body": json.loads(BODY)}
        ).encode()
        if shutil.which("wrk"):
            return wrk_post(f"{url}/v1/jobs", payload, 64, seconds, work)
        return asyncio.run(httpx_post(f"{url}/v1/jobs", payload, 64, seconds))
    finally:
        proc.terminate()
        proc.wait(timeout=15)


TARGETS = {
    "enqueue_jobs_per_s": (">=", 5000),
    "drain_jobs_per_s": (">=", 5000),
    "round_trip_p50_ms": ("<=", 1.0),
    "overhead_bytes_per_queued_job": ("<=", 512),
    "api_submit_per_s": (">=", 5000),
    "sync_added_p50_ms": ("<=", 1.0),
    "sync_added_p99_ms": ("<=", 4.0),
    "stream_added_first_chunk_p50_ms": ("<=", 1.5),
    "sync_rps_64": (">=", 1500),
    "stream_rps_64": (">=", 600),
}


def table(results: dict[str, Any]) -> str:
    rows = ["| figure | value | SPEC §7 target |", "|---|---|---|"]
    for name, value in results.items():
        if not isinstance(value, int | float):
            continue
        target = TARGETS.get(name)
        shown = f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"
        rows.append(f"| {name} | {shown} | {f'{target[0]} {target[1]:,}' if target else ''} |")
    return "\n".join(rows)


@click.command()
@click.option("--quick", is_flag=True, help="N=2,000 and 3 s of HTTP load: checks that it works.")
@click.option("--jobs", type=int, default=20_000, show_default=True)
@click.option("--seconds", type=int, default=10, show_default=True)
def main(quick: bool, jobs: int, seconds: int) -> None:
    n, secs, samples = (2000, 3, 50) if quick else (jobs, seconds, 200)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with EmbeddedRedis(work / "redis", aof=True) as redis_server:
            results.update(uvloop.run(bench_broker(redis_server.url, work, n, samples)))
            api = bench_api(redis_server.url, work, secs)
            results["api_submit_per_s"] = api["requests_per_s"]
            results["api_submit_p50_ms"] = api["p50_ms"]
            results["api_submit_p99_ms"] = api["p99_ms"]
            results["api_submit_non_2xx"] = api["non_2xx"] or 0
            results["http_client"] = api["client"]
            if shutil.which("wrk"):
                results.update(bench_sync(redis_server.url, work, secs))
            version = subprocess.run(
                [redis_server.binary, "--version"], capture_output=True, text=True, check=True
            ).stdout.split()[2]
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "redis": version, "jobs": n, "http_seconds": secs},
        "results": results,
    }  # fmt: skip
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"bench-{report['when']}.json"
    path.write_text(json.dumps(report, indent=2))
    click.echo(table(results))
    click.echo(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
