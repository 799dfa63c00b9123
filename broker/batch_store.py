"""Batches (docs/api.md#files-and-batches, OpenAI's Batch API) as Redis holds them, and their life
cycle.

A batch is a hash, ``batch:<id>``, because the job scripts count its lines as they end
(``batch_job_ended`` in ``lua/_lib.lua``: ``n_done`` and ``n_<status>``) in the same atomic step
that ends each job. The control plane drives everything else (``workers/batch_control.py``):
expansion into jobs from a cursor (``expanded``), cancellation, expiry and finalisation once
``n_done`` reaches ``total``. The API only creates, reads and asks for a cancel.

Status flow (OpenAI's): validating → in_progress → finalizing → completed; failed (nothing
could run); cancelling → cancelled; expired when the completion window ends first. Finished
lines are kept in every case.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis

from anygate.broker.connection import awaited
from anygate.broker.errors import NotFoundError
from anygate.broker.keys import KeySpace

ENDED = frozenset({"completed", "failed", "expired", "cancelled"})
BATCH_TIMES = (
    "created_at",
    "in_progress_at",
    "expires_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
)
"""A batch's timestamps, as OpenAI's Batch object names them (each null until reached)."""


def new_batch_id() -> str:
    return f"batch_{secrets.token_hex(16)}"


def batch_not_found(batch_id: str) -> NotFoundError:
    return NotFoundError(
        f"No batch found with id '{batch_id}'.", param="batch_id", code="batch_not_found"
    )


@dataclass(frozen=True, slots=True)
class Batch:
    id: str
    h: dict[str, str] = field(repr=False)

    @property
    def tenant(self) -> str:
        return self.h["tenant"]

    @property
    def status(self) -> str:
        return self.h["status"]

    def number(self, name: str) -> int:
        return int(self.h.get(name) or 0)

    @property
    def total(self) -> int:
        return self.number("total")

    @property
    def done(self) -> int:
        return self.number("n_done")

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    def to_api(self) -> dict[str, Any]:
        h = self.h
        errors = orjson.loads(h["errors"]) if h.get("errors") else None
        body: dict[str, Any] = {
            "id": self.id,
            "object": "batch",
            "endpoint": h["endpoint"],
            "errors": {"object": "list", "data": errors} if errors else None,
            "input_file_id": h["input_file_id"],
            "completion_window": h["completion_window"],
            "status": h["status"],
            "output_file_id": h.get("output_file_id") or None,
            "error_file_id": h.get("error_file_id") or None,
            "request_counts": {
                "total": self.total,
                "completed": self.number("n_succeeded"),
                "failed": self.done - self.number("n_succeeded"),
            },
            "metadata": orjson.loads(h["metadata"]) if h.get("metadata") else None,
        }
        for name in BATCH_TIMES:
            body[name] = int(h[name]) if h.get(name) else None
        if h.get("usage"):
            body["usage"] = orjson.loads(h["usage"])
        return body


class BatchStore:
    def __init__(self, redis: Redis, keys: KeySpace) -> None:
        self._redis = redis
        self._k = keys

    async def create(
        self,
        tenant: str,
        *,
        input_file_id: str,
        endpoint: str,
        completion_window: str,
        window_s: int,
        total: int,
        metadata: dict[str, str] | None,
        webhook_url: str | None,
    ) -> Batch:
        batch_id = new_batch_id()
        now = int(time.time())
        h = {
            "tenant": tenant,
            "status": "validating",
            "endpoint": endpoint,
            "input_file_id": input_file_id,
            "completion_window": completion_window,
            "created_at": str(now),
            "expires_at": str(now + window_s),
            "total": str(total),
            "expanded": "0",
            "n_done": "0",
            "n_succeeded": "0",
        }
        if metadata:
            h["metadata"] = orjson.dumps(metadata).decode()
        if webhook_url:
            h["webhook_url"] = webhook_url
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._k.batch(batch_id), mapping=h)
            pipe.sadd(self._k.active_batches, batch_id)
            pipe.zadd(self._k.tenant_batches(tenant), {batch_id: now * 1000})
            await pipe.execute()
        return Batch(batch_id, h)

    async def load(self, batch_id: str) -> Batch | None:
        h = await awaited(self._redis.hgetall(self._k.batch(batch_id)))
        if not h:
            return None
        return Batch(batch_id, await self._with_shard_counts(batch_id, h))

    async def _with_shard_counts(self, batch_id: str, h: dict[str, str]) -> dict[str, str]:
        """Add the ended-line counts kept on the other shards (``batch_job_ended`` counts a job
        on the shard it ended on; docs/scaling.md)."""
        for shard in self._k.shards[1:]:
            counts = await awaited(self._redis.hgetall(self._k.on(shard).batch_done(batch_id)))
            for name, n in counts.items():
                h[name] = str(int(h.get(name, "0")) + int(n))
        return h

    async def get(self, tenant: str, batch_id: str) -> Batch:
        """The tenant's batch; another tenant's answers exactly as a missing one does."""
        batch = await self.load(batch_id)
        if batch is None or batch.tenant != tenant:
            raise batch_not_found(batch_id)
        return batch

    async def page(self, tenant: str, *, after: str | None, limit: int) -> tuple[list[Batch], bool]:
        """Newest first, as OpenAI lists batches; ``after`` is the last id of the page before.

        A page starts at the rank after ``after``'s, not below its score: batches made in the
        same second share a score, and a score bound would skip the others at a page's end."""
        key = self._k.tenant_batches(tenant)
        start = 0
        if after:
            rank = await awaited(self._redis.zrevrank(key, after))
            if rank is None:
                return [], False
            start = rank + 1
        ids = await awaited(self._redis.zrevrange(key, start, start + limit))
        async with self._redis.pipeline(transaction=False) as pipe:
            for batch_id in ids[:limit]:
                pipe.hgetall(self._k.batch(batch_id))
            hashes = await pipe.execute()
        found = [
            Batch(i, await self._with_shard_counts(i, h))
            for i, h in zip(ids, hashes, strict=False)
            if h
        ]
        return found, len(ids) > limit

    async def request_cancel(self, tenant: str, batch_id: str) -> Batch:
        """validating/in_progress → cancelling; the control plane does the rest. Idempotent for
        a batch already cancelling or ended (OpenAI answers the batch as it is)."""
        batch = await self.get(tenant, batch_id)
        if batch.status in {"validating", "in_progress"}:
            key = self._k.batch(batch_id)
            await awaited(
                self._redis.hset(
                    key, mapping={"status": "cancelling", "cancelling_at": str(int(time.time()))}
                )
            )
            return await self.get(tenant, batch_id)
        return batch

    async def set(self, batch_id: str, **fields: str | int) -> None:
        await awaited(
            self._redis.hset(
                self._k.batch(batch_id), mapping={k: str(v) for k, v in fields.items()}
            )
        )

    async def transition(self, batch_id: str, status: str) -> None:
        """A new status, stamped with its time as OpenAI's ``<status>_at`` field."""
        fields: dict[str, str | int] = {"status": status}
        if f"{status}_at" in BATCH_TIMES:
            fields[f"{status}_at"] = int(time.time())
        await self.set(batch_id, **fields)
        if status in ENDED:
            await awaited(self._redis.srem(self._k.active_batches, batch_id))

    async def active_ids(self) -> list[str]:
        ids: set[str] = await awaited(self._redis.smembers(self._k.active_batches))
        return sorted(ids)
