"""The wind-down of a cancelled batch, the driver running in-process against a real Redis
without workers, so every job stays queued and the wind-down is what ends them.

A batch cancelled after a crash cut an expansion short (issue 7): the lines of the unfinished
chunk that already became jobs are found through their idempotency keys and cancelled with the
batch; the rest are accounted as never sent. A large batch's wind-down goes a page at a time
from a cursor, within a tick's time budget, and only while its tick holds the batch's lock (the
50,000-line benchmark batch's wind-down outlived its lock, and every later tick started it again
beside the first, on into the next repetition)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from anygate.broker import Broker
from anygate.broker.batch_store import BatchStore
from anygate.broker.deployment_health import HealthView
from anygate.broker.file_store import FileStore
from anygate.broker.models import NewJob
from anygate.broker.tenant_store import TenantStore
from anygate.config import AnygateConfig, TenantQuotas
from anygate.core.planning import Planner
from anygate.workers import batch_driver
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


async def _expanded_batch(
    redis: Redis, config: AnygateConfig, broker: Broker, lines: int
) -> tuple[BatchStore, BatchDriver, str]:
    """A batch of ``lines`` queued jobs (one tick expanded it; no worker runs), cancel asked."""
    await TenantStore(redis, broker.keys).seed(config)
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "q"}]}
    raw = b"".join(
        orjson.dumps(
            {"custom_id": f"c{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}
        )
        + b"\n"
        for i in range(lines)
    )
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
        total=lines,
        metadata=None,
        webhook_url=None,
    )
    driver = BatchDriver(config, redis, broker, Planner(config, redis, HealthView()))
    await driver.tick()
    expanded = await batches.load(batch.id)
    assert expanded is not None
    assert expanded.h.get("expanded_all") == "1"
    await batches.request_cancel("acme", batch.id)
    return batches, driver, batch.id


async def _statuses(redis: Redis, broker: Broker, batch_id: str) -> Counter[str]:
    ids = await redis.lrange(broker.keys.batch_jobs(batch_id), 0, -1)
    records = [await broker.get("acme", j) for j in ids]
    return Counter(r.status.value for r in records if r is not None)


async def test_a_wind_down_is_spread_over_ticks_from_its_cursor(
    redis: Redis, config: AnygateConfig, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches, driver, batch_id = await _expanded_batch(redis, config, broker, 30)
    # a page per tick: the time budget is spent as soon as one page is cancelled
    monkeypatch.setattr(batch_driver, "PAGE", 10)
    monkeypatch.setattr(batch_driver, "TICK_BUDGET_S", 0.0)
    await driver.tick()
    half = await batches.load(batch_id)
    assert half is not None
    assert half.status == "cancelling"
    assert half.number("wound") == 10
    assert await _statuses(redis, broker, batch_id) == {"cancelled": 10, "queued": 20}
    ticks = 1
    while (await batches.load(batch_id) or half).status != "cancelled" and ticks < 10:
        await driver.tick()
        ticks += 1
    ended = await batches.load(batch_id)
    assert ended is not None
    assert ended.status == "cancelled"
    assert ticks == 4, "three pages, then the finalisation"
    assert (ended.done, ended.number("n_cancelled"), ended.number("wound")) == (30, 30, 30)
    assert await _statuses(redis, broker, batch_id) == {"cancelled": 30}


async def test_a_wind_down_that_lost_its_lock_stops_and_leaves_the_batch_to_the_new_holder(
    redis: Redis, config: AnygateConfig, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches, driver, batch_id = await _expanded_batch(redis, config, broker, 30)
    monkeypatch.setattr(batch_driver, "PAGE", 10)
    lock = broker.keys.batch_lock(batch_id)
    cancel = broker.cancel

    async def cancel_then_lose_the_lock(*args: Any, **kwargs: Any) -> Any:
        # the first page outlived the lock, and another control process took the batch
        await redis.set(lock, "another-process", ex=30)
        return await cancel(*args, **kwargs)

    monkeypatch.setattr(broker, "cancel", cancel_then_lose_the_lock)
    await driver.tick()
    after = await batches.load(batch_id)
    assert after is not None
    assert after.status == "cancelling", "not finalised by a tick that lost the batch"
    assert after.number("wound") == 0, "its cursor is the new holder's to move"
    assert await redis.get(lock) == "another-process", "the other's lock is neither taken nor freed"
    assert 0 < await redis.ttl(lock) <= 30, "nor extended"


async def test_a_finalised_batch_lets_its_lines_expire_as_plain_jobs_do(
    redis: Redis, config: AnygateConfig, broker: Broker
) -> None:
    """A line's record is kept past its end only until the output is written (its ``keep_s`` is
    the window plus the retention): a steady soak grew Redis by 2 keys per batch line for a day."""
    batches, driver, batch_id = await _expanded_batch(redis, config, broker, 12)
    ids = await redis.lrange(broker.keys.batch_jobs(batch_id), 0, -1)
    kept = await redis.hget(broker.keys.for_job(ids[0]).job(ids[0]), "keep_s")
    assert int(kept) > config.retention.result_ttl_s, "a running batch keeps its lines longer"
    for _ in range(5):
        await driver.tick()
    ended = await batches.load(batch_id)
    assert ended is not None
    assert ended.status == "cancelled"
    ttl = config.retention.result_ttl_s
    for job_id in ids:
        keys = broker.keys.for_job(job_id)
        assert 0 < await redis.ttl(keys.job(job_id)) <= ttl, job_id
        assert 0 < await redis.ttl(keys.events(job_id)) <= ttl, job_id
