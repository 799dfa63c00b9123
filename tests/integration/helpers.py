"""Small builders shared by the broker-level tests."""

from __future__ import annotations

import orjson

from anygate.broker import Broker, ClaimedJob, Enqueued, NewJob, new_job_id
from anygate.config import Priority

CHAT = "/v1/chat/completions"


def chat_body(text: str = "hi", **extra: object) -> bytes:
    return orjson.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}
    )


async def enqueue(
    broker: Broker,
    tenant: str = "acme",
    priority: Priority = Priority.STANDARD,
    *,
    body: bytes | None = None,
    weight: int = 1,
    idempotency_key: str | None = None,
    deadline_ms: int = 0,
) -> Enqueued:
    job = NewJob(
        tenant=tenant,
        pool="openai",
        endpoint=CHAT,
        model="gpt-4o-mini",
        body=body or chat_body(),
        priority=priority,
        tenant_weight=weight,
        idempotency_key=idempotency_key,
        deadline_ms=deadline_ms,
    )
    return await broker.enqueue(job, new_job_id(broker.keys.shard_of_pool("openai")))


async def claim_one(broker: Broker, worker: str = "w1") -> ClaimedJob | None:
    jobs = await broker.claim("openai", worker, 1)
    return jobs[0] if jobs else None
