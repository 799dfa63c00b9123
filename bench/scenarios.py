"""The HTTP scenarios of one repetition, and the 1,000-in-flight worker memory scenario.

Each function measures one scenario once and returns its raw figures; ``run.py`` repeats them
and ``report.py`` turns repetitions into medians. Direct and gateway calls alternate inside a
repetition so a slow patch of the (shared, 2-core) machine hits both sides alike.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import redis
from loadgen import interleaved_sse, wrk
from stack import KEY, MODEL, POOL, SINK_MODEL, WIDE_MODEL, WIDE_POOL, Stack, rss_mib

from anygate.broker import Broker, KeySpace, create_redis
from anygate.config import load_config

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "x" * 120}]}
PLAIN = json.dumps(CHAT).encode()
STREAMED = json.dumps({**CHAT, "stream": True}).encode()
SUBMIT = json.dumps(
    {"endpoint": "/v1/chat/completions", "body": {**CHAT, "model": SINK_MODEL}}
).encode()
CHAT_PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class Durations:
    latency_s: float
    throughput_s: float
    submit_s: float
    sse_samples: int
    wrk_threads: int


def latency_c1(stack: Stack, d: Durations, work: Path, rep: int) -> dict[str, Any]:
    """(a) one connection, non-streamed: wrk's p50/p99, direct and gateway back to back."""
    urls = {"direct": stack.mock_url + CHAT_PATH, "gateway": stack.api_url + CHAT_PATH}
    order = ["direct", "gateway"] if rep % 2 == 0 else ["gateway", "direct"]
    runs = {
        name: wrk(urls[name], PLAIN, KEY, conns=1, seconds=d.latency_s, threads=1, work=work)
        for name in order
    }
    return {
        **runs,
        "added_p50_ms": runs["gateway"]["p50_ms"] - runs["direct"]["p50_ms"],
        "added_p99_ms": runs["gateway"]["p99_ms"] - runs["direct"]["p99_ms"],
    }


def stream_c1(stack: Stack, d: Durations) -> dict[str, Any]:
    """(b) one streamed request at a time, 20 chunks: first chunk and whole response."""
    result = interleaved_sse(
        ("127.0.0.1", stack.mock_port, CHAT_PATH),
        ("127.0.0.1", stack.api_port, CHAT_PATH),
        STREAMED,
        KEY,
        d.sse_samples,
    )
    result["added_ttfc_p50_ms"] = result["gateway_ttfc_p50_ms"] - result["direct_ttfc_p50_ms"]
    result["added_total_p50_ms"] = result["gateway_total_p50_ms"] - result["direct_total_p50_ms"]
    return result


def throughput_64(stack: Stack, d: Durations, work: Path) -> dict[str, Any]:
    """(c) 64 keep-alive connections through the gateway, non-streamed and streamed."""
    url = stack.api_url + CHAT_PATH
    kw: dict[str, Any] = {"conns": 64, "seconds": d.throughput_s, "threads": d.wrk_threads}
    return {
        "plain": wrk(url, PLAIN, KEY, work=work, **kw),
        "stream": wrk(url, STREAMED, KEY, work=work, **kw),
    }


def submit_64(stack: Stack, d: Durations, work: Path) -> dict[str, Any]:
    """(d) ``POST /v1/jobs`` at 64 connections, into a pool no worker serves."""
    url = stack.api_url + "/v1/jobs"
    return wrk(url, SUBMIT, KEY, conns=64, seconds=d.submit_s, threads=d.wrk_threads, work=work)


def smoke(stack: Stack) -> dict[str, Any]:
    """Refuse to time a broken gateway: a normal completion, an SSE stream of 20 content chunks
    ending in ``[DONE]``, and exactly one upstream call per request (the mock's request log)."""
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    with httpx.Client(timeout=30, headers=headers) as client:
        client.delete(stack.mock_url + "/_mock/requests").raise_for_status()
        plain = client.post(stack.api_url + CHAT_PATH, content=PLAIN)
        streamed = client.post(stack.api_url + CHAT_PATH, content=STREAMED)
        upstream = client.get(stack.mock_url + "/_mock/requests").json()["data"]
    events = [ln[5:].strip() for ln in streamed.text.splitlines() if ln.startswith("data:")]
    chunks = [json.loads(e) for e in events if e != "[DONE]"]
    content = sum(1 for c in chunks for ch in c.get("choices", []) if ch["delta"].get("content"))
    found = {
        "plain": f"HTTP {plain.status_code}",
        "stream": f"HTTP {streamed.status_code}, {content} content chunks, last {events[-1:]}",
        "upstream_calls": len(upstream),
    }
    ok = (
        plain.status_code == 200
        and plain.json()["choices"][0]["message"]["content"]
        and streamed.status_code == 200
        and events[-1:] == ["[DONE]"]
        and content == 20
        and len(upstream) == 2
    )
    if not ok:
        raise RuntimeError(f"smoke test failed: {found} {plain.text[:300]} {streamed.text[:300]}")
    return found


def warm_up(stack: Stack, work: Path) -> None:
    """Connection pools, lazy imports and Lua script loading, before anything is measured."""
    url = stack.api_url + CHAT_PATH
    for body in (PLAIN, STREAMED):
        wrk(url, body, KEY, conns=8, seconds=1, threads=1, work=work)


async def _submit(api_url: str, n: int, model: str) -> int:
    body = {"endpoint": CHAT_PATH, "body": {**CHAT, "model": model}}
    headers = {"authorization": f"Bearer {KEY}"}
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=api_url, limits=limits, timeout=30) as client:
        sem = asyncio.Semaphore(32)

        async def one() -> bool:
            async with sem:
                response = await client.post("/v1/jobs", json=body, headers=headers)
                return response.status_code < 300

        return sum(await asyncio.gather(*(one() for _ in range(n))))


def _inflight(stats: dict[str, str]) -> int:
    return int(stats.get("inflight", 0))


async def _stats(broker: Broker) -> dict[str, str]:
    stats: dict[str, str] = await broker.pool_stats(WIDE_POOL)
    return stats


async def worker_rss_1000(stack: Stack, in_flight: int, mock_latency_ms: float) -> dict[str, Any]:
    """(g) a fresh ``--concurrency 1000`` worker holding ``in_flight`` slow calls: its VmRSS.

    The jobs are submitted through ``/v1/jobs`` before the worker starts, so it claims them all
    at once instead of finishing the first ones while the last are still being submitted; the
    mock's latency is raised for this scenario only (``POST /_mock/settings``). The figure is
    the highest VmRSS sampled while the pool reports ``in_flight`` jobs running.
    """
    config = load_config(stack.config_path)
    redis = create_redis(config.redis)
    broker = Broker(redis, config)
    mock = httpx.AsyncClient(base_url=stack.mock_url, timeout=5)
    worker = None
    rss, peak_inflight = 0.0, 0
    try:
        answer = await mock.post("/_mock/settings", json={"latency_ms": mock_latency_ms})
        answer.raise_for_status()
        accepted = await _submit(stack.api_url, in_flight, WIDE_MODEL)
        t0 = time.monotonic()
        worker = stack.start_worker(WIDE_POOL, 1000)
        deadline = t0 + 30 + mock_latency_ms / 1000
        reached_s = None
        while time.monotonic() < deadline:
            stats = await _stats(broker)
            peak_inflight = max(peak_inflight, _inflight(stats))
            if _inflight(stats) >= in_flight:
                reached_s = reached_s or time.monotonic() - t0
                rss = max(rss, rss_mib(worker.pid))
            elif reached_s is not None or int(stats.get("queued", 0)) + _inflight(stats) == 0:
                break  # the first calls came back (or there is nothing left to wait for)
            await asyncio.sleep(0.1)
        if reached_s is None:
            rss = rss_mib(worker.pid)
        while time.monotonic() < deadline:  # let the calls finish: a clean stop, no hand-back
            stats = await _stats(broker)
            if _inflight(stats) + int(stats.get("queued", 0)) == 0:
                break
            await asyncio.sleep(0.1)
        finished = _inflight(stats) == 0
    finally:
        await mock.post("/_mock/settings", json={"latency_ms": 0})
        await mock.aclose()
        if worker is not None:
            stack.stop(worker)
        await redis.aclose()
    return {
        "rss_mib": rss,
        "accepted": accepted,
        "peak_inflight": peak_inflight,
        "reached": reached_s is not None,
        "reached_after_s": reached_s,
        "all_finished": finished,
    }


BATCH_LINES = 50_000


def batch_50k(stack: Stack) -> dict[str, Any]:
    """docs/performance.md: a 50,000-line batch file accepted and fully enqueued in ≤ 10 s: from the
    first byte of the upload to the control plane's last committed chunk (no worker runs meanwhile,
    so the figure is the gateway's alone). The batch is cancelled afterwards, and the figure
    includes nothing of that."""
    line = {"custom_id": "", "method": "POST", "url": CHAT_PATH, "body": {**CHAT, "model": MODEL}}
    data = b"".join(
        json.dumps({**line, "custom_id": f"r{i}"}).encode() + b"\n" for i in range(BATCH_LINES)
    )
    headers = {"authorization": f"Bearer {KEY}"}
    keys = KeySpace(stack.namespace)
    r = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    _settle_aof(r)
    before = _redis_state(r)
    with httpx.Client(base_url=stack.api_url, headers=headers, timeout=120) as client:
        t0 = time.perf_counter()
        upload = client.post(
            "/v1/files", data={"purpose": "batch"}, files={"file": ("bench.jsonl", data)}
        )
        upload.raise_for_status()
        t_upload = time.perf_counter()
        batch = client.post(
            "/v1/batches",
            json={
                "input_file_id": upload.json()["id"],
                "endpoint": CHAT_PATH,
                "completion_window": "24h",
            },
        )
        batch.raise_for_status()
        batch_id = batch.json()["id"]
        deadline = time.monotonic() + 120
        rewrites = 0
        while r.hget(keys.batch(batch_id), "expanded_all") != "1":
            if time.monotonic() > deadline:
                raise RuntimeError("the batch was not enqueued within 120 s")
            rewrites += int(cast(dict[str, Any], r.info("persistence"))["aof_rewrite_in_progress"])
            time.sleep(0.01)
        t_done = time.perf_counter()
        during = _redis_state(r)
        queued = int(cast(str | None, r.hget(keys.stats(POOL), "queued")) or 0)
        client.post(f"/v1/batches/{batch_id}/cancel").raise_for_status()
        t_cancel = time.perf_counter()
        while (status := client.get(f"/v1/batches/{batch_id}").json()["status"]) != "cancelled":
            if time.monotonic() > deadline + 240:
                raise RuntimeError(f"the batch did not wind down (still {status})")
            time.sleep(0.2)
        wound_down_s = time.perf_counter() - t_cancel
    r.close()
    return {
        "lines": BATCH_LINES,
        "file_bytes": len(data),
        "upload_s": round(t_upload - t0, 3),
        "enqueued_s": round(t_done - t0, 3),
        "queued_after": queued,
        "wound_down_s": round(wound_down_s, 3),
        "aof_rewrite_seen_polls": rewrites,
        "redis_before": before,
        "redis_enqueued": during,
    }


def _settle_aof(r: redis.Redis, timeout_s: float = 300) -> None:
    """Rewrite the AOF now, between repetitions, and wait for it. Each repetition leaves its
    50,000 cancelled jobs retained (a day, as in production), a few hundred MiB; Redis's own
    rewrite (at 100 % AOF growth) then landed inside a later repetition's expansion, forking
    and copying an ever larger dataset on a 2-core machine while the expansion was timed."""
    deadline = time.monotonic() + timeout_s

    def rewriting() -> bool:
        info = cast(dict[str, Any], r.info("persistence"))
        return bool(int(info["aof_rewrite_in_progress"]) or int(info["aof_rewrite_scheduled"]))

    while rewriting():
        if time.monotonic() > deadline:
            raise RuntimeError("an AOF rewrite did not finish")
        time.sleep(0.1)
    r.bgrewriteaof()  # type: ignore[no-untyped-call]  # untyped in redis-py
    time.sleep(0.1)
    while rewriting():
        if time.monotonic() > deadline:
            raise RuntimeError("the AOF rewrite did not finish")
        time.sleep(0.1)


def _redis_state(r: redis.Redis) -> dict[str, Any]:
    """What a repetition found in Redis: keys, memory, the AOF's size and rewrites so far."""
    memory = cast(dict[str, Any], r.info("memory"))
    persistence = cast(dict[str, Any], r.info("persistence"))
    return {
        "keys": r.dbsize(),
        "used_memory_mib": round(int(memory["used_memory"]) / 2**20, 1),
        "fragmentation": memory["mem_fragmentation_ratio"],
        "aof_mib": round(int(persistence.get("aof_current_size", 0)) / 2**20, 1),
        "aof_rewrites": int(persistence.get("aof_rewrites", 0))
        + int(persistence["aof_rewrite_in_progress"]),
    }
