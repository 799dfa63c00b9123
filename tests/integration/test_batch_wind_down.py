"""A batch cancelled after a crash cut an expansion short (issue 7): the lines of the unfinished
chunk that already became jobs are found through their idempotency keys and cancelled with the
batch; the rest are accounted as never sent. The driver runs in-process against a real Redis,
without workers, so every job stays queued and the wind-down is what ends them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from redis.asyncio import Redis

from anygate.broker import Broker
from anygate.broker.batch_store import BatchStore
from anygate.broker.deployment_health import HealthView
from anygate.broker.file_store import FileStore
from anygate.broker.models import NewJob
from anygate.broker.tenant_store import TenantStore
from anygate.config import AnygateConfig, TenantQuotas
from anygate.core.planning import Planner
from anygate.workers.batch_driver import BatchDriver
from anygate.workers.batch_lines_to_jobs import BatchContext, line_to_job


async def _bytes(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_cancel_after_a_cut_short_chunk_cancels_its_jobs_and_accounts_the_rest(
    redis: Redis, config: AnygateConfig, broker: Broker
) -> None:
    await TenantStore(redis, broker.keys).seed(config)
    lines = [
        {
            "custom_id": f"c{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"q{i}"}]},
        }
        for i in range(6)
    ]
    raw = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    file = await FileStore(redis, broker.keys, config.files).put(
        "acme", "batch", "in.jsonl", _bytes(raw)
    )
    batches = BatchStore(redis, broker.keys)
    batch = await batches.create(
        "acme",
        input_file_id=file.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        window_s=3600,
        total=6,
        metadata=None,
        webhook_url=None,
    )
    planner = Planner(config, redis, HealthView())
    ctx = BatchContext(batch.id, "acme", 1, TenantQuotas(), "/v1/chat/completions", 3600)
    crashed = []  # the first two lines were enqueued, then the control process died
    for n in (1, 2):
        job = await line_to_job(ctx, n, orjson.dumps(lines[n - 1]), planner, {})
        assert isinstance(job, NewJob)
        crashed.append((await broker.enqueue(job, f"job_cut{n}")).job_id)
    await batches.request_cancel("acme", batch.id)
    driver = BatchDriver(config, redis, broker, planner)
    await driver.tick()
    await driver.tick()
    ended = await batches.load(batch.id)
    assert ended is not None
    assert ended.status == "cancelled"
    assert (ended.total, ended.done, ended.number("n_succeeded")) == (6, 6, 0)
    for job_id in crashed:
        record = await broker.get("acme", job_id)
        assert record is not None
        assert record.status.value == "cancelled", "the cut-short chunk's jobs were found"
    listed = await redis.lrange(broker.keys.batch_jobs(batch.id), 0, -1)
    assert sorted(listed) == sorted(crashed)
    stored = await redis.lrange(broker.keys.batch_rejects(batch.id), 0, -1)
    rejects = [orjson.loads(r) for r in stored]
    assert sorted(r["custom_id"] for r in rejects) == ["c2", "c3", "c4", "c5"]
    assert {r["error"]["code"] for r in rejects} == {"batch_cancelled"}
