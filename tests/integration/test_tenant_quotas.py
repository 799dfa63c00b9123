"""Tenant quotas in the broker's scripts (docs/queue-semantics.md#quotas), on a real Redis: max
queued jobs and budgets refuse at submit, in-flight caps make jobs wait without slowing other
tenants, and the per-tenant counters they rest on come back to zero whatever path a job takes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from redis.asyncio import Redis

from anygate.broker import Broker, create_redis
from anygate.broker.errors import InsufficientQuotaError, QueueFullError
from anygate.broker.quotas import seconds_until_reset, usage_periods
from anygate.config import AnygateConfig
from anygate.ops.embedded_redis import EmbeddedRedis
from tests.integration.helpers import claim_one, enqueue
from tests.support.configs import build_config, hash_key

USAGE = {"prompt_tokens": 60, "completion_tokens": 40, "total_tokens": 100}


def _config(redis_server: EmbeddedRedis, namespace: str, **quotas: Any) -> AnygateConfig:
    tenants = [
        {"id": "acme", "api_key_sha256": [hash_key("a")], "quotas": quotas},
        {"id": "globex", "api_key_sha256": [hash_key("g")]},
    ]
    return build_config(redis_server.url, namespace, tenants=tenants)


@pytest.fixture
async def quota_broker(
    request: pytest.FixtureRequest, redis_server: EmbeddedRedis, namespace: str
) -> Any:
    quotas: dict[str, Any] = request.param
    config = _config(redis_server, namespace, **quotas)
    redis = create_redis(config.redis)
    yield Broker(redis, config), redis
    await redis.aclose()


async def _counters(broker: Broker, redis: Redis, tenant: str) -> tuple[int, int]:
    queued = await redis.hget(broker.keys.tenants_queued, tenant)  # type: ignore[misc]
    in_flight = await redis.hget(broker.keys.tenants_in_flight, tenant)  # type: ignore[misc]
    return int(queued or 0), int(in_flight or 0)


@pytest.mark.parametrize("quota_broker", [{"max_queued": 3}], indirect=True)
async def test_over_its_queued_cap_a_tenant_gets_queue_full_and_loses_nothing(
    quota_broker: tuple[Broker, Redis],
) -> None:
    broker, redis = quota_broker
    accepted = [await enqueue(broker) for _ in range(3)]
    with pytest.raises(QueueFullError) as refused:
        await enqueue(broker, idempotency_key="late")
    assert refused.value.status == 429
    assert refused.value.code == "queue_full"
    assert refused.value.retry_after is not None
    assert refused.value.retry_after >= 1
    assert "max_queued" in refused.value.message
    # nothing of the refused job was written, not even its idempotency key
    assert await redis.exists(broker.keys.idempotency("acme", "late")) == 0
    # another tenant is not affected; the accepted jobs are intact
    await enqueue(broker, tenant="globex")
    for e in accepted:
        assert (await broker.get("acme", e.job_id)) is not None
    # a started job frees a place
    job = await claim_one(broker)
    assert job is not None
    await enqueue(broker)
    assert await _counters(broker, redis, "acme") == (3, 1)


@pytest.mark.parametrize("quota_broker", [{"max_queued": 1}], indirect=True)
async def test_an_idempotent_retry_of_an_accepted_job_is_not_refused(
    quota_broker: tuple[Broker, Redis],
) -> None:
    broker, _redis = quota_broker
    first = await enqueue(broker, idempotency_key="k1")
    again = await enqueue(broker, idempotency_key="k1")
    assert again.job_id == first.job_id
    assert not again.created


@pytest.mark.parametrize(
    ("quota_broker", "period", "field"),
    [
        ({"daily_tokens": 150}, "day", "daily_tokens"),
        ({"monthly_tokens": 150}, "month", "monthly_tokens"),
        ({"daily_usd": 0.001}, "day", "daily_usd"),
        ({"monthly_usd": 0.001}, "month", "monthly_usd"),
    ],
    indirect=["quota_broker"],
)
async def test_a_spent_budget_refuses_new_jobs_but_not_running_ones(
    quota_broker: tuple[Broker, Redis], period: str, field: str
) -> None:
    broker, _redis = quota_broker
    await enqueue(broker)
    await enqueue(broker)
    first, second = await claim_one(broker), await claim_one(broker)
    assert first is not None
    assert second is not None
    assert await broker.finish(
        first, "openai", succeeded=True, result={}, usage=USAGE, cost_usd=0.0006
    )
    await enqueue(broker)  # 100 tokens / $0.0006 used: still under
    # the running job finishes although its usage takes the tenant over the budget
    assert await broker.finish(
        second, "openai", succeeded=True, result={}, usage=USAGE, cost_usd=0.0006
    )
    with pytest.raises(InsufficientQuotaError) as refused:
        await enqueue(broker)
    exc = refused.value
    assert (exc.status, exc.type, exc.code) == (429, "insufficient_quota", "insufficient_quota")
    assert field in exc.message
    renews = seconds_until_reset(period, datetime.now(UTC))
    assert exc.retry_after is not None
    assert abs(exc.retry_after - renews) < 5
    await enqueue(broker, tenant="globex")  # other tenants keep their budgets


@pytest.mark.parametrize("quota_broker", [{}], indirect=True)
async def test_usage_is_recorded_per_tenant_model_and_day(
    quota_broker: tuple[Broker, Redis],
) -> None:
    broker, redis = quota_broker
    for _ in range(2):
        await enqueue(broker)
        job = await claim_one(broker)
        assert job is not None
        await broker.finish(job, "openai", succeeded=True, result={}, usage=USAGE, cost_usd=0.25)
    await enqueue(broker)
    failed = await claim_one(broker)
    assert failed is not None
    await broker.finish(failed, "openai", succeeded=False, error={"message": "x"})
    periods = usage_periods(datetime.now(UTC))
    day = await redis.hgetall(broker.keys.tenant_usage("acme", periods.day))  # type: ignore[misc]
    assert day["requests"] == "2"
    assert day["tokens"] == "200"
    assert day["gpt-4o-mini:prompt_tokens"] == "120"
    assert day["gpt-4o-mini:completion_tokens"] == "80"
    assert float(day["gpt-4o-mini:cost_usd"]) == pytest.approx(0.5)
    month = await redis.hgetall(broker.keys.tenant_usage("acme", periods.month))  # type: ignore[misc]
    assert month["tokens"] == "200"
    assert float(month["cost_usd"]) == pytest.approx(0.5)
    assert await redis.ttl(broker.keys.tenant_usage("acme", periods.day)) > 0


@pytest.mark.parametrize("quota_broker", [{"max_in_flight": 2}], indirect=True)
async def test_a_tenant_at_its_in_flight_cap_waits_and_others_are_served(
    quota_broker: tuple[Broker, Redis],
) -> None:
    broker, redis = quota_broker
    for _ in range(5):
        await enqueue(broker)
    for _ in range(2):
        await enqueue(broker, tenant="globex")
    claimed = await broker.claim("openai", "w1", 10)
    tenants = sorted(j.tenant for j in claimed)
    assert tenants == ["acme", "acme", "globex", "globex"]
    assert await broker.claim("openai", "w1", 10) == []  # acme waits; its jobs stay queued
    assert await _counters(broker, redis, "acme") == (3, 2)
    done = next(j for j in claimed if j.tenant == "acme")
    await broker.finish(done, "openai", succeeded=True, result={})
    more = await broker.claim("openai", "w1", 10)
    assert [j.tenant for j in more] == ["acme"]
    # a redelivered job of a capped tenant waits too, without blocking the redeliveries
    requeued = next(j for j in claimed if j.tenant == "globex")
    assert await broker.requeue(requeued, "openai", delay_s=0, reason="t", refund_attempt=True)
    again = await broker.claim("openai", "w1", 10)
    assert [j.tenant for j in again] == ["globex"]


@pytest.mark.parametrize("quota_broker", [{"max_in_flight": 1}], indirect=True)
async def test_a_capped_tenants_redelivered_job_waits_for_room(
    quota_broker: tuple[Broker, Redis],
) -> None:
    broker, redis = quota_broker
    await enqueue(broker)
    await enqueue(broker)
    a = await claim_one(broker)
    assert a is not None
    b = await claim_one(broker)
    assert b is None
    assert await broker.requeue(a, "openai", delay_s=0, reason="t", refund_attempt=True)
    x = await claim_one(broker)  # one of the two (the redelivered one first)
    assert x is not None
    assert x.id == a.id
    assert await claim_one(broker) is None
    assert await _counters(broker, redis, "acme") == (1, 1)


@pytest.mark.parametrize("quota_broker", [{}], indirect=True)
async def test_tenant_counters_come_back_to_zero_on_every_path(
    quota_broker: tuple[Broker, Redis],
) -> None:
    broker, redis = quota_broker
    ids = [(await enqueue(broker)).job_id for _ in range(6)]
    assert await _counters(broker, redis, "acme") == (6, 0)
    assert await broker.cancel("acme", ids[5])  # cancelled while queued
    jobs = await broker.claim("openai", "w1", 4)
    assert await _counters(broker, redis, "acme") == (1, 4)
    await broker.finish(jobs[0], "openai", succeeded=True, result={})
    await broker.finish(jobs[1], "openai", succeeded=False, error={"message": "x"})
    await broker.requeue(jobs[2], "openai", delay_s=0, reason="t", refund_attempt=False)
    assert await broker.cancel("acme", jobs[3].id)  # cancelled while running
    assert await _counters(broker, redis, "acme") == (2, 0)
    rest = await broker.claim("openai", "w1", 10)
    assert len(rest) == 2
    for job in rest:
        await broker.finish(job, "openai", succeeded=True, result={})
    assert await _counters(broker, redis, "acme") == (0, 0)
