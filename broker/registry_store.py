"""The worker registry in Redis: one hash per pool, worker id → its heartbeat's value (the codec:
``worker_registry.py``; a worker writes its entry with each heartbeat, ``heartbeat-2.lua``)."""

from __future__ import annotations

from redis.asyncio import Redis

from anygate.broker.connection import awaited
from anygate.broker.keys import KeySpace
from anygate.broker.worker_registry import RegistryValue, decode_registry_value


class WorkerRegistry:
    def __init__(self, redis: Redis, keys: KeySpace) -> None:
        self._redis = redis
        self._k = keys

    async def values(self, pool: str) -> dict[str, RegistryValue]:
        """Worker id → what it last published; a value this version cannot read is left out."""
        found: dict[str, str] = await awaited(self._redis.hgetall(self._k.workers(pool)))
        decoded = {worker: decode_registry_value(value) for worker, value in found.items()}
        return {worker: value for worker, value in decoded.items() if value is not None}

    async def unregister(self, pool: str, worker_id: str) -> None:
        """A worker leaving cleanly; one that dies is forgotten by ``reclaim-6.lua`` later."""
        await awaited(self._redis.hdel(self._k.workers(pool), worker_id))
