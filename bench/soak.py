"""The soak (``bench/run.py --soak MINUTES``): a steady mixed load for MINUTES, sampled every
minute, to show whether anything grows — memory of any process, Redis memory or keys, latency.

The load is open-loop at rates a shared 2-core machine sustains (``RATES``, per second): sync
chat, streamed chat (20 chunks), ``/v1/jobs`` submits each followed by long-polls until the job
ends, embeddings, and a small batch file now and then. Everything runs on loopback against the
processes ``stack.Stack`` starts: Redis with AOF everysec, the mock provider, the API, one worker
(concurrency 64) and the control plane. Retention is cut to a minute (``RETENTION_S``), so finished
jobs, their idempotency keys and batch files expire inside the soak: after the warm-up, Redis's
key count and memory reach their steady state instead of growing by design for a day.

Each sample holds the RSS of every process (with its children) via psutil, Redis
``used_memory`` and key count, p50/p99 latency and calls per kind over that interval, and errors.
``soak_report`` judges each series flat or not and draws it; the JSON goes to
``bench/results/soak-<day>.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis.asyncio as aioredis
import soak_report
from httpx_sse import aconnect_sse
from stack import KEY, MODEL, POOL, Stack, config_tree

from anygate.ops.processes import free_port

EMBED_MODEL = "bench-embed"
RATES = {"chat": 20.0, "stream": 5.0, "job": 5.0, "embed": 5.0}
"""Calls started per second, per kind (open loop: a slow gateway does not slow the load)."""
BATCH_EVERY_S = 120.0
BATCH_LINES = 200
RETENTION_S = 60
MAX_IN_FLIGHT = 256
"""Per kind: more than this many calls still open is counted as an error, not started."""
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "x" * 120}]}
TERMINAL = {"succeeded", "failed", "cancelled", "expired"}


def soak_settings(redis_url: str, namespace: str) -> dict[str, Any]:
    """Blocks laid over the bench config: an embedding model, and a minute of retention."""
    models = config_tree(redis_url, namespace)["models"]
    models[EMBED_MODEL] = {
        "kind": "embedding",
        "deployments": [{"provider": POOL, "model": "mock-embed"}],
    }
    return {
        "models": models,
        "retention": {"result_ttl_s": RETENTION_S, "idempotency_ttl_s": RETENTION_S},
        "files": {"ttl_s": RETENTION_S},
    }


@dataclass
class Tally:
    """Latencies (ms) and errors per kind since the last sample."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    first_error: dict[str, str] = field(default_factory=dict)

    def take(self) -> tuple[dict[str, list[float]], dict[str, int]]:
        lat, err = self.latencies, self.errors
        self.latencies, self.errors = defaultdict(list), defaultdict(int)
        return lat, err

    def error(self, kind: str, why: str) -> None:
        self.errors[kind] += 1
        self.first_error.setdefault(kind, why[:300])


class Load:
    """One client per kind of call, each timed from its first byte sent to its end."""

    def __init__(self, api_url: str, tally: Tally) -> None:
        self.client = httpx.AsyncClient(
            base_url=api_url,
            headers={"authorization": f"Bearer {KEY}"},
            timeout=60,
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=128),
        )
        self.tally = tally

    async def chat(self) -> None:
        answer = await self.client.post("/v1/chat/completions", json=CHAT)
        answer.raise_for_status()

    async def stream(self) -> None:
        body = {**CHAT, "stream": True}
        async with aconnect_sse(self.client, "POST", "/v1/chat/completions", json=body) as sse:
            sse.response.raise_for_status()
            async for event in sse.aiter_sse():
                if event.data == "[DONE]":
                    return
        raise RuntimeError("the stream ended without [DONE]")

    async def job(self) -> None:
        submit = {"endpoint": "/v1/chat/completions", "body": CHAT}
        answer = await self.client.post("/v1/jobs", json=submit)
        answer.raise_for_status()
        job_id = answer.json()["id"]
        await self._until_ended(f"/v1/jobs/{job_id}", {"wait": 5}, TERMINAL, 60)

    async def embed(self) -> None:
        body = {"model": EMBED_MODEL, "input": ["soak " * 20]}
        answer = await self.client.post("/v1/embeddings", json=body)
        answer.raise_for_status()

    async def batch(self) -> None:
        line = {"method": "POST", "url": "/v1/chat/completions", "body": CHAT}
        data = b"".join(
            json.dumps({**line, "custom_id": f"s{i}"}).encode() + b"\n" for i in range(BATCH_LINES)
        )
        upload = await self.client.post(
            "/v1/files", data={"purpose": "batch"}, files={"file": ("soak.jsonl", data)}
        )
        upload.raise_for_status()
        created = await self.client.post(
            "/v1/batches",
            json={
                "input_file_id": upload.json()["id"],
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            },
        )
        created.raise_for_status()
        ended = {"completed", "failed", "cancelled", "expired"}
        status = await self._until_ended(f"/v1/batches/{created.json()['id']}", {}, ended, 90)
        if status != "completed":
            raise RuntimeError(f"batch ended {status}")

    async def _until_ended(
        self, path: str, params: dict[str, Any], ended: set[str], timeout_s: float
    ) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            answer = await self.client.get(path, params=params)
            answer.raise_for_status()
            status = str(answer.json()["status"])
            if status in ended:
                return status
            if not params:
                await asyncio.sleep(1.0)  # batches have no long-poll: poll once a second
        raise TimeoutError(f"{path} did not end within {timeout_s} s")

    async def timed(self, kind: str, call: Callable[[], Awaitable[None]]) -> None:
        self.tally.in_flight[kind] += 1
        t0 = time.perf_counter()
        try:
            await call()
        except Exception as exc:  # every failure is a figure of the soak, not a crash of it
            self.tally.error(kind, f"{type(exc).__name__}: {exc}")
        else:
            self.tally.latencies[kind].append((time.perf_counter() - t0) * 1000)
        finally:
            self.tally.in_flight[kind] -= 1


async def _fire(load: Load, kind: str, every_s: float, until: float, tasks: set[Any]) -> None:
    """Start a call of ``kind`` every ``every_s`` seconds, on a fixed schedule, until ``until``."""
    call = getattr(load, kind)
    next_at = time.monotonic()
    while next_at < until:
        if load.tally.in_flight[kind] >= MAX_IN_FLIGHT:
            load.tally.error(kind, "too many calls still open: the gateway fell behind")
        else:
            task = asyncio.create_task(load.timed(kind, call))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        next_at += every_s
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


def _tree_rss_mib(pid: int) -> float:
    """RSS of a process and its descendants, in MiB (0 once it is gone)."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total / 2**20


def _percentile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


async def _sample(
    r: aioredis.Redis, pids: dict[str, int], tally: Tally, t0: float
) -> dict[str, Any]:
    latencies, errors = tally.take()
    memory = await r.info("memory")
    return {
        "t_s": round(time.monotonic() - t0, 1),
        "rss_mib": {name: round(_tree_rss_mib(pid), 2) for name, pid in pids.items()},
        "redis_used_memory_mib": round(int(memory["used_memory"]) / 2**20, 3),
        "redis_keys": int(await r.dbsize()),
        "calls": {kind: len(v) for kind, v in latencies.items()},
        "latency_p50_ms": {k: round(_percentile(v, 50), 2) for k, v in latencies.items() if v},
        "latency_p99_ms": {k: round(_percentile(v, 99), 2) for k, v in latencies.items() if v},
        "errors": dict(errors),
    }


def series_of(samples: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Samples → one list per series (``rss_mib:api``, ``latency_p99_ms:chat``, ...)."""
    out: dict[str, list[float]] = defaultdict(list)
    kinds = sorted({k for s in samples for k in s["calls"]} | set(RATES))
    names = sorted({n for s in samples for n in s["rss_mib"]})
    for s in samples:
        for name in names:
            out[f"rss_mib:{name}"].append(s["rss_mib"].get(name, 0.0))
        out["redis_used_memory_mib"].append(s["redis_used_memory_mib"])
        out["redis_keys"].append(s["redis_keys"])
        for metric in ("latency_p50_ms", "latency_p99_ms"):
            for kind in kinds:
                if kind in s[metric]:
                    out[f"{metric}:{kind}"].append(s[metric][kind])
        for kind in kinds:
            out[f"errors:{kind}"].append(s["errors"].get(kind, 0))
    return dict(out)


async def drive(
    stack: Stack, redis_url: str, redis_pid: int, minutes: float, sample_s: float
) -> dict[str, Any]:
    """Run the load for ``minutes``, one sample every ``sample_s``; samples, series, verdicts."""
    pids = {proc.name: proc.pid for proc in stack.procs} | {"redis": redis_pid}
    tally = Tally()
    load = Load(stack.api_url, tally)
    r = aioredis.Redis.from_url(redis_url)
    tasks: set[Any] = set()
    t0 = time.monotonic()
    until = t0 + minutes * 60
    firing = [
        asyncio.create_task(_fire(load, kind, 1 / rate, until, tasks))
        for kind, rate in RATES.items()
    ]
    firing.append(asyncio.create_task(_fire(load, "batch", BATCH_EVERY_S, until, tasks)))
    samples: list[dict[str, Any]] = []
    try:
        next_at = t0 + sample_s
        while next_at <= until + 0.5:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            samples.append(await _sample(r, pids, tally, t0))
            last = samples[-1]
            print(
                f"[soak] {last['t_s']:>7.0f}s  redis {last['redis_used_memory_mib']:.1f} MiB "
                f"{last['redis_keys']} keys  calls {last['calls']}  errors {last['errors']}",
                flush=True,
            )
            next_at += sample_s
    finally:
        for task in firing:
            task.cancel()
        await asyncio.gather(*firing, return_exceptions=True)
        if tasks:  # let the calls still open end (a batch may take a while); then drop them
            _done, pending = await asyncio.wait(tasks, timeout=30)
            for task in pending:
                task.cancel()
        await load.client.aclose()
        await r.aclose()
    series = series_of(samples)
    minutes_per_sample = sample_s / 60
    verdicts = {
        name: soak_report.verdict(name, values, minutes_per_sample)
        for name, values in series.items()
    }
    return {
        "samples": samples,
        "series": series,
        "verdicts": verdicts,
        "first_errors": tally.first_error,
    }


def start_stack(stack: Stack) -> None:
    """Mock (a bounded request log: its memory must not grow by design), API, worker, control."""
    stack.settings = soak_settings(stack.redis_url, stack.namespace)
    stack.start_mock(free_port(), "--request-log-size", "100")
    stack.start_api(free_port())
    stack.start_worker(POOL, 64)
    stack.start_control()


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """Which series grew, and the totals."""
    judged = {k: v for k, v in result["verdicts"].items() if v["flat"] is not None}
    return {
        "flat": all(v["flat"] for v in judged.values()),
        "not_flat": sorted(k for k, v in judged.items() if not v["flat"]),
        "calls": {
            kind: sum(s["calls"].get(kind, 0) for s in result["samples"])
            for kind in [*RATES, "batch"]
        },
        "errors": sum(sum(s["errors"].values()) for s in result["samples"]),
        "tolerances_pct": {k: v * 100 for k, v in soak_report.TOLERANCE.items()},
    }


def render(result: dict[str, Any]) -> str:
    lines = [soak_report.chart(result["series"], result["verdicts"]), ""]
    s = summary(result)
    lines.append(f"calls {s['calls']}, errors {s['errors']}")
    lines.append("flat: yes" if s["flat"] else f"NOT flat: {', '.join(s['not_flat'])}")
    if result["first_errors"]:
        lines.append(f"first error per kind: {result['first_errors']}")
    return "\n".join(lines)


def document(result: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "summary": summary(result),
        "verdicts": result["verdicts"],
        "series": result["series"],
        "samples": result["samples"],
        "first_errors": result["first_errors"],
        "meta": {
            **meta,
            "rates_per_s": RATES,
            "batch_every_s": BATCH_EVERY_S,
            "batch_lines": BATCH_LINES,
            "retention_s": RETENTION_S,
        },
    }


def write(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
