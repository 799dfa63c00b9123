"""What the admin API reads from the queues and does to them (docs/api.md#admin-api).

Usage per tenant, model and day; the depth and age of every lane; the worker registry; pausing a
pool (dead letters have a module of their own). Every read is bounded: lanes are found with SCAN
and a bounded COUNT (never KEYS, which would block Redis for every tenant), and per-key reads go
in pipelines, one round trip per batch. Parsing what the scripts wrote is done by the plain
functions at the top, so it is testable without Redis."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import orjson
from redis.asyncio import Redis

from anygate.broker.connection import awaited
from anygate.broker.keys import CLASS_ORDER, KeySpace
from anygate.broker.shard_sums import sum_fields
from anygate.broker.worker_registry import decode_registry_value
from anygate.config import Priority

USAGE_MAX_DAYS = 366
SCAN_COUNT = 500
"""Keys SCAN looks at per call: each call stays short, whatever the keyspace holds."""
MAX_LANES = 10_000
"""Lanes one overview reports; beyond it the answer says it is truncated."""
PIPELINE_CHUNK = 1_000

# --- parsing what the scripts wrote (pure) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class UsageRow:
    tenant: str
    model: str
    day: date
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float

    def to_api(self) -> dict[str, Any]:
        return {
            "object": "usage",
            "tenant": self.tenant,
            "model": self.model,
            "date": self.day.isoformat(),
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "cost_usd": round(self.cost_usd, 10),
        }


_MODEL_FIELDS = ("requests", "prompt_tokens", "completion_tokens", "cost_usd")


def usage_rows(tenant: str, day: date, fields: dict[str, str]) -> list[UsageRow]:
    """The per-model rows of one ``usage:<tenant>:<YYYYMMDD>`` hash (finish-5.lua writes
    ``<model>:requests``, ``:prompt_tokens``, ``:completion_tokens``, ``:cost_usd`` next to the
    day's totals, which have no colon). A model alias may itself contain colons."""
    per_model: dict[str, dict[str, str]] = {}
    for name, value in fields.items():
        model, sep, field = name.rpartition(":")
        if sep and field in _MODEL_FIELDS:
            per_model.setdefault(model, {})[field] = value
    return [
        UsageRow(
            tenant=tenant,
            model=model,
            day=day,
            requests=int(v.get("requests") or 0),
            prompt_tokens=int(v.get("prompt_tokens") or 0),
            completion_tokens=int(v.get("completion_tokens") or 0),
            cost_usd=float(v.get("cost_usd") or 0.0),
        )
        for model, v in sorted(per_model.items())
    ]


def days_between(first: date, last: date) -> list[date]:
    """Every day from ``first`` to ``last``, both included."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


@dataclass(frozen=True, slots=True)
class LaneName:
    pool: str
    priority: Priority
    tenant: str


def parse_lane_key(prefix: str, key: str) -> LaneName | None:
    """``<prefix>lane:<pool>:<class>:<tenant>``; pool, class and tenant names hold no colon."""
    if not key.startswith(prefix + "lane:"):
        return None
    parts = key[len(prefix) + 5 :].split(":")
    if len(parts) != 3:
        return None
    pool, cls, tenant = parts
    try:
        return LaneName(pool, Priority(cls), tenant)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Lane:
    name: LaneName
    depth: int
    """Entries not yet delivered to a worker: the jobs waiting in this lane."""
    oldest_ms: int | None
    """When the oldest waiting job was queued (its entry id's time)."""

    def to_api(self, now_ms: int) -> dict[str, Any]:
        age = None if self.oldest_ms is None else max(0.0, (now_ms - self.oldest_ms) / 1000)
        return {
            "class": self.name.priority.value,
            "tenant": self.name.tenant,
            "depth": self.depth,
            "oldest_age_s": age,
        }


def entry_ms(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])


@dataclass(frozen=True, slots=True)
class WorkerEntry:
    id: str
    heartbeat_ms: int
    concurrency: int
    in_flight: int

    def to_api(self, now_ms: int, alive_within_ms: int) -> dict[str, Any]:
        return {
            "object": "worker",
            "id": self.id,
            "concurrency": self.concurrency,
            "in_flight": self.in_flight,
            "last_heartbeat": self.heartbeat_ms / 1000,
            "alive": now_ms - self.heartbeat_ms < alive_within_ms,
        }


def parse_registry_value(worker_id: str, value: str) -> WorkerEntry | None:
    """None for a value this version cannot read (``worker_registry``)."""
    found = decode_registry_value(value)
    if found is None:
        return None
    return WorkerEntry(worker_id, found.heartbeat_ms, found.concurrency, found.in_flight)


# --- Redis --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PoolCounts:
    queued: int
    in_flight: int
    delayed: int
    redeliver: int
    dead_letters: int
    paused: dict[str, Any] | None


class AdminQueries:
    def __init__(self, redis: Redis, keys: KeySpace) -> None:
        self._redis = redis
        self._k = keys

    # --- usage ----------------------------------------------------------------------------

    async def tenant_ids(self) -> list[str]:
        """Every tenant ever created, deleted ones included: their usage is still history."""
        ids: list[str] = await awaited(self._redis.zrange(self._k.tenant_ids, 0, -1))
        return sorted(ids)

    async def usage(self, tenants: Sequence[str], days: Sequence[date]) -> list[UsageRow]:
        """Rows per tenant, model and day, in that order; days without usage have none."""
        wanted = [(t, d) for t in tenants for d in days]
        rows: list[UsageRow] = []
        for i in range(0, len(wanted), PIPELINE_CHUNK):
            chunk = wanted[i : i + PIPELINE_CHUNK]
            shards = self._k.shards
            async with self._redis.pipeline(transaction=False) as pipe:
                for tenant, day in chunk:
                    for shard in shards:
                        usage = self._k.on(shard).tenant_usage(tenant, day.strftime("%Y%m%d"))
                        pipe.hgetall(usage)
                hashes: list[dict[str, str]] = await pipe.execute()
            for n, (tenant, day) in enumerate(chunk):
                parts = hashes[n * len(shards) : (n + 1) * len(shards)]
                rows.extend(usage_rows(tenant, day, sum_fields(parts)))
        return rows

    # --- queues ---------------------------------------------------------------------------

    async def lanes(self) -> tuple[list[Lane], bool]:
        """Every lane with jobs waiting, and whether there were more lanes than ``MAX_LANES``."""
        names: dict[str, LaneName] = {}
        truncated = False
        for shard in self._k.shards:  # SCAN visits every node of a cluster
            prefix = self._k.on(shard).prefix
            match = _glob_escape(prefix) + "lane:*"
            async for key in self._redis.scan_iter(match=match, count=SCAN_COUNT):
                name = parse_lane_key(prefix, key)
                if name is not None:
                    names[key] = name
                if len(names) >= MAX_LANES:
                    truncated = True
                    break
            if truncated:
                break
        keys = list(names)
        lanes: list[Lane] = []
        for i in range(0, len(keys), PIPELINE_CHUNK):
            lanes.extend(await self._read_lanes(keys[i : i + PIPELINE_CHUNK], names))
        order = {p: n for n, p in enumerate(CLASS_ORDER)}
        lanes.sort(key=lambda ln: (ln.name.pool, order[ln.name.priority], ln.name.tenant))
        return lanes, truncated

    async def _read_lanes(self, keys: list[str], names: dict[str, LaneName]) -> list[Lane]:
        """Two round trips: each lane's length and consumer group (how many of its entries were
        delivered, up to which id), then the oldest undelivered entry of the non-empty ones."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.xlen(key)
                pipe.xinfo_groups(key)
            replies = await pipe.execute(raise_on_error=False)
        waiting: list[tuple[str, int, str]] = []
        for n, key in enumerate(keys):
            length, groups = replies[2 * n], replies[2 * n + 1]
            if isinstance(length, Exception) or isinstance(groups, Exception):
                continue  # drained and deleted since the scan
            group = next((g for g in groups if g.get("name") == "g"), None)
            pending = int(group["pending"]) if group else 0
            last = str(group["last-delivered-id"]) if group else "0-0"
            depth = int(length) - pending
            if depth > 0:
                waiting.append((key, depth, last))
        if not waiting:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, _depth, last in waiting:
                pipe.xrange(key, min=f"({last}", max="+", count=1)
            heads = await pipe.execute(raise_on_error=False)
        lanes = []
        for (key, depth, _last), head in zip(waiting, heads, strict=True):
            oldest = entry_ms(head[0][0]) if head and not isinstance(head, Exception) else None
            lanes.append(Lane(names[key], depth, oldest))
        return lanes

    async def pool_counts(self, pools: Sequence[str]) -> dict[str, PoolCounts]:
        k = self._k
        async with self._redis.pipeline(transaction=False) as pipe:
            for pool in pools:
                pipe.hget(k.stats(pool), "queued")
                pipe.zcard(k.leases(pool))
                pipe.zcard(k.delayed(pool))
                pipe.llen(k.redeliver(pool))
                pipe.llen(k.dead(pool))
                pipe.get(k.paused(pool))
            replies = await pipe.execute()
        counts = {}
        for n, pool in enumerate(pools):
            queued, in_flight, delayed, redeliver, dead, paused = replies[6 * n : 6 * n + 6]
            counts[pool] = PoolCounts(
                queued=max(0, int(queued or 0)),
                in_flight=int(in_flight),
                delayed=int(delayed),
                redeliver=int(redeliver),
                dead_letters=int(dead),
                paused=_loads_object(paused) if paused is not None else None,
            )
        return counts

    # --- workers --------------------------------------------------------------------------

    async def workers(self, pools: Sequence[str]) -> dict[str, list[WorkerEntry]]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for pool in pools:
                pipe.hgetall(self._k.workers(pool))
            registries: list[dict[str, str]] = await pipe.execute()
        found: dict[str, list[WorkerEntry]] = {}
        for pool, registry in zip(pools, registries, strict=True):
            entries = [parse_registry_value(wid, v) for wid, v in registry.items()]
            found[pool] = sorted((e for e in entries if e is not None), key=lambda e: e.id)
        return found

    # --- pause and resume -----------------------------------------------------------------

    async def pause(self, pool: str, actor: str) -> None:
        """Claims of the pool's workers come back empty from now on (claim-13.lua checks the
        key first); jobs running now finish, queued ones stay queued, submissions still go in."""
        mark = orjson.dumps({"at": round(time.time(), 3), "by": actor}).decode()
        await awaited(self._redis.set(self._k.paused(pool), mark, nx=True))

    async def resume(self, pool: str) -> bool:
        """Lift the pause and wake the pool's idle workers (the ones that last claimed nothing
        sleep until a wake or their idle poll). Returns whether the pool was paused."""
        k = self._k
        async with self._redis.pipeline(transaction=False) as pipe:  # the pool's shard
            pipe.delete(k.paused(pool))
            pipe.delete(k.idle(pool))
            pipe.publish(k.wake_channel(pool), "1")
            deleted, _idle, _subscribers = await pipe.execute()
        return bool(deleted)


def _glob_escape(text: str) -> str:
    """SCAN's MATCH is a glob: a literal part must not be read as a pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def _loads_object(raw: str) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
