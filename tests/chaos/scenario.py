"""One chaos run from start to verdict: start the stack, take the baseline, run the load through
the fault schedule, stop the faults and the load, wait (bounded) for every accepted job to end,
wait out retention, gather the evidence, stop the stack, reconcile and report.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis

from tests.chaos.batch import BatchRun, finish_batch, start_batch
from tests.chaos.collector import Collector
from tests.chaos.evidence import Check, Evidence
from tests.chaos.faults import FaultRunner, Notes, Supervisor
from tests.chaos.journal import Journal
from tests.chaos.keyspace import Census, take_census
from tests.chaos.load import run_load
from tests.chaos.logscan import tracebacks
from tests.chaos.reconcile import CHECKS
from tests.chaos.report import as_json, table
from tests.chaos.schedule import build_schedule
from tests.chaos.settings import BATCH_WINDOW_S, RESULT_TTL_S, TENANT_KEYS, Profile
from tests.chaos.stack import ChaosStack
from tests.chaos.webhooks import Deliveries, receiver

QUIET_TAIL_S = 5.0
"""Load keeps running this long after the last fault, so recovery is exercised under load."""
WEBHOOK_WAIT_S = 20.0
POOLS = ("openai", "gemini")

Watcher = Callable[[ChaosStack, asyncio.Event], Coroutine[Any, Any, None]]
"""An extra task that runs alongside the load (the soak's memory sampler)."""


@dataclass
class Outcome:
    checks: dict[str, Check]
    report: dict[str, Any]
    text: str
    json_path: Path


def _queue_counters(r: redis.Redis, prefix: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for name in ("tqueued", "tinflight"):
        for tenant, value in r.hgetall(f"{prefix}{name}").items():  # type: ignore[union-attr]
            out[f"{name}[{tenant}]"] = int(value)
    for pool in POOLS:
        out[f"leases:{pool}"] = int(r.zcard(f"{prefix}leases:{pool}"))  # type: ignore[arg-type]
        out[f"redeliver:{pool}"] = int(r.llen(f"{prefix}redeliver:{pool}"))  # type: ignore[arg-type]
        out[f"delayed:{pool}"] = int(r.zcard(f"{prefix}delayed:{pool}"))  # type: ignore[arg-type]
        stats: Any = r.hmget(f"{prefix}stats:{pool}", ["queued", "inflight"])
        out[f"stats:{pool}.queued"] = int(stats[0] or 0)
        out[f"stats:{pool}.inflight"] = int(stats[1] or 0)
    return out


def _usage(r: redis.Redis, prefix: str) -> dict[str, dict[str, int]]:
    """Each tenant's ``requests`` and ``tokens``, summed over its daily usage hashes."""
    out: dict[str, dict[str, int]] = {}
    for tenant in TENANT_KEYS:
        sums = out.setdefault(tenant, {"requests": 0, "tokens": 0})
        for key in r.scan_iter(match=f"{prefix}usage:{tenant}:*"):
            if len(str(key).rsplit(":", 1)[1]) != 8:
                continue  # a month's hash (YYYYMM): the days already hold the same counts
            values: Any = r.hmget(key, ["requests", "tokens"])
            sums["requests"] += int(values[0] or 0)
            sums["tokens"] += int(values[1] or 0)
    return out


def _batch_keys(r: redis.Redis, prefix: str, batch_id: str) -> set[str]:
    """A batch's line records, kept for its window on purpose (``keep_s``): allowed leftovers,
    as long as they do expire within the window plus retention."""
    if not batch_id:
        return set()
    allowed: set[str] = set()
    for job_id in r.lrange(f"{prefix}bjobs:{batch_id}", 0, -1):  # type: ignore[union-attr]
        for family in ("job", "ev", "body"):
            key = f"{prefix}{family}:{job_id}"
            if 0 < int(r.ttl(key)) <= BATCH_WINDOW_S + RESULT_TTL_S:  # type: ignore[arg-type]
                allowed.add(key)
    return allowed


def _end_state(stack: ChaosStack, batch_id: str) -> tuple[Census, dict[str, Any], set[str]]:
    with stack.client() as r:
        census = take_census(r, stack.prefix)
        state = {"usage": _usage(r, stack.prefix), "counters": _queue_counters(r, stack.prefix)}
        return census, state, _batch_keys(r, stack.prefix, batch_id)


def _baseline(stack: ChaosStack) -> Census:
    with stack.client() as r:
        return take_census(r, stack.prefix)


async def _drain(collector: Collector, journal: Journal, give_up_s: float) -> None:
    deadline = time.monotonic() + give_up_s
    while time.monotonic() < deadline:
        collector.add(journal.told)
        if await collector.sweep() and not collector.unfinished():
            return
        await asyncio.sleep(1.0)


async def _await_webhooks(hooks: Deliveries, wanted: set[str]) -> None:
    deadline = time.monotonic() + WEBHOOK_WAIT_S
    while time.monotonic() < deadline:
        got = {d.delivery_id for d in hooks.snapshot()}
        if {f"dlv_{w}" for w in wanted} <= got:
            return
        await asyncio.sleep(0.5)


async def _mock_log(stack: ChaosStack) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=stack.mock_url, timeout=30) as mock:
        data: list[dict[str, Any]] = (await mock.get("/_mock/requests")).json()["data"]
        return data


async def _run(
    profile: Profile, stack: ChaosStack, hooks: Deliveries, watcher: Watcher | None, notes: Notes
) -> tuple[Evidence, float]:
    journal, lock = Journal(), asyncio.Lock()
    before = await asyncio.to_thread(_baseline, stack)
    collector = Collector(stack.redis.url, stack.prefix)
    stop_watch, stop_load = asyncio.Event(), asyncio.Event()
    watchers = [
        asyncio.create_task(collector.run(stop_watch)),
        asyncio.create_task(Supervisor(stack, lock, notes).run(stop_watch)),
    ]
    if watcher is not None:
        watchers.append(asyncio.create_task(watcher(stack, stop_watch)))
    started = time.time()
    batch = BatchRun(stack.api_urls[0], profile.batch_lines)
    await start_batch(batch, hooks.url)
    load = asyncio.create_task(run_load(profile, stack.api_urls, journal, hooks.url, stop_load))
    runner = FaultRunner(stack, lock, notes)
    try:
        faults = asyncio.create_task(runner.run(build_schedule(profile), stop_load))
        if profile.soak_s:
            await asyncio.sleep(profile.soak_s)
        else:
            await faults
            await asyncio.sleep(QUIET_TAIL_S)
        stop_load.set()
        await faults
        await load
        load_s = time.time() - started
        await _drain(collector, journal, profile.drain_s)
        await finish_batch(batch, give_up_s=profile.drain_s)
        ended = {j for j in journal.webhook_jobs if j in collector.jobs}
        await _await_webhooks(hooks, ended | ({batch.batch_id} if batch.batch_id else set()))
        await collector.sweep(everything=True)
        mock_requests = await _mock_log(stack)
        wait = min(collector.last_end() + RESULT_TTL_S + 3 - time.time(), RESULT_TTL_S + 30)
        await asyncio.sleep(max(0.0, wait))
        after, state, allowed = await asyncio.to_thread(_end_state, stack, batch.batch_id)
    finally:
        stop_load.set()
        stop_watch.set()
        await asyncio.gather(*watchers, load, return_exceptions=True)
    notes.exits += stack.exited()
    evidence = Evidence(
        jobs=collector.jobs,
        journal=journal,
        windows=runner.windows,
        batch=batch,
        deliveries=hooks.snapshot(),
        usage=state["usage"],
        counters=state["counters"],
        before=before,
        after=after,
        allowed=allowed,
        exits=notes.exits,
        problems=notes.problems,
        findings=[],
        mock_requests=mock_requests,
        started=started,
    )
    return evidence, load_s


def _dump_evidence(ev: Evidence, path: Path) -> None:
    """Everything the verdicts were drawn from, for a post-mortem: every job's record and event
    log, every call and stream the clients saw, the fault windows."""
    path.write_bytes(
        orjson.dumps(
            {
                "windows": [dataclasses.asdict(w) for w in ev.windows],
                "calls": [dataclasses.asdict(c) for c in ev.journal.calls],
                "streams": [dataclasses.asdict(s) for s in ev.journal.streams],
                "deliveries": [dataclasses.asdict(d) for d in ev.deliveries],
                "jobs": {
                    j.id: {"fields": j.fields, "events": j.ordered_events(), "gone": j.gone}
                    for j in ev.jobs.values()
                },
            }
        )
    )


async def run_scenario(profile: Profile, root: Path, watcher: Watcher | None = None) -> Outcome:
    """Run the whole scenario and reconcile it; the stack is always stopped at the end."""
    t0 = time.time()
    stack = ChaosStack(root)
    notes = Notes()
    try:
        await asyncio.to_thread(stack.start)
        with receiver(stack.webhook_secret) as hooks:
            evidence, load_s = await _run(profile, stack, hooks, watcher, notes)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(stack.stop)
    evidence.findings = tracebacks(stack.logs())
    checks = {key: check(evidence) for key, check in CHECKS.items()}
    meta = {
        "profile": profile.name,
        "seed": profile.seed,
        "wall_s": time.time() - t0,
        "load_s": load_s,
        "root": str(root),
    }
    report = as_json(evidence, list(checks.values()), meta)
    path = root / "chaos-report.json"
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    _dump_evidence(evidence, root / "chaos-evidence.json")
    return Outcome(checks, report, table(report), path)
