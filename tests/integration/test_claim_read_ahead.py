"""A claim reads several entries of a lane at once when it will take them all (``claim-13.lua``'s
read-ahead: one class with work, one tenant in its ring, no in-flight cap), on a real Redis:
the same jobs in the same order as one entry at a time, and no entry left delivered to the
worker without its job started (a pending entry nobody started would never be read again)."""

from __future__ import annotations

from redis.asyncio import Redis

from anygate.broker import Broker
from anygate.config import Priority
from tests.integration.helpers import enqueue


async def _pending(redis: Redis, broker: Broker, tenant: str = "acme") -> int:
    lane = broker.keys.lane("openai", Priority.STANDARD, tenant)
    if not await redis.exists(lane):
        return 0
    info = await redis.xpending(lane, "g")
    return int(info["pending"])


async def _xreadgroup_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_xreadgroup", {}).get("calls", 0))


async def test_a_lone_tenant_is_read_ahead_in_order_and_nothing_is_stranded(
    broker: Broker, redis: Redis
) -> None:
    queued = [(await enqueue(broker)).job_id for _ in range(40)]
    reads = await _xreadgroup_calls(redis)
    first = await broker.claim("openai", "w1", 32)
    assert await _xreadgroup_calls(redis) - reads == 1, "32 entries in one read"
    assert [j.id for j in first] == queued[:32]
    assert await _pending(redis, broker) == 32, "exactly the started jobs are delivered"
    rest = await broker.claim("openai", "w1", 32)
    assert [j.id for j in rest] == queued[32:]
    assert await broker.claim("openai", "w1", 32) == []


async def test_cancelled_and_expired_entries_read_ahead_are_skipped_not_stranded(
    broker: Broker, redis: Redis
) -> None:
    ids = [(await enqueue(broker)).job_id for _ in range(10)]
    for job_id in ids[1:4]:
        assert await broker.cancel("acme", job_id)
    expired = (await enqueue(broker, deadline_ms=1)).job_id
    later = [(await enqueue(broker)).job_id for _ in range(3)]
    jobs = await broker.claim("openai", "w1", 8)
    assert [j.id for j in jobs] == [ids[0], *ids[4:], *later[:1]]
    assert expired not in {j.id for j in jobs}
    assert await _pending(redis, broker) == 8, "the skipped entries were acknowledged"
    assert [j.id for j in await broker.claim("openai", "w1", 8)] == later[1:]
    stats = await redis.hgetall(broker.keys.stats("openai"))
    assert int(stats.get("queued", 0)) == 0


async def test_two_tenants_still_alternate(broker: Broker) -> None:
    a = [(await enqueue(broker, tenant="a")).job_id for _ in range(4)]
    b = [(await enqueue(broker, tenant="b")).job_id for _ in range(4)]
    jobs = await broker.claim("openai", "w1", 8)
    assert [j.id for j in jobs] == [a[0], b[0], a[1], b[1], a[2], b[2], a[3], b[3]]


async def test_another_class_with_work_is_still_interleaved(broker: Broker) -> None:
    std = [(await enqueue(broker)).job_id for _ in range(6)]
    inter = [(await enqueue(broker, priority=Priority.INTERACTIVE)).job_id for _ in range(6)]
    jobs = await broker.claim("openai", "w1", 12)
    assert sorted(j.id for j in jobs) == sorted(std + inter)
    order = "".join("i" if j.id in inter else "s" for j in jobs)
    # smooth weighted round-robin over the classes (16:4 by default) until the interactive lane
    # runs dry: the order one entry at a time gave
    assert order == "iisiiiisssss", order
