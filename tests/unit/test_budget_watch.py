"""The control plane's budget check on fakeredis (docs/operations.md#budget-warnings): a crossing
is announced by whoever sets its mark, the log line says so at ``warning``, a delivery that
could not be queued is tried again at the next check, and a tenant without a URL of its own
falls back to the operator's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import fakeredis
import pytest
import structlog

from anygate.broker import KeySpace
from anygate.broker.tenant_store import TenantStore
from anygate.config import BudgetWarningsConfig, TenantQuotas, TenantSettings
from anygate.workers.budget_warnings import EVENT, BudgetWatch

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
KEYS = KeySpace("unit")
OPERATOR = "https://ops.example/hooks"
OWN = "https://acme.example/hooks"


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str, dict[str, Any]]] = []
        self.failing = False

    async def __call__(self, url: str, event: str, subject: str, data: dict[str, Any]) -> None:
        if self.failing:
            raise ConnectionError("redis went away")
        self.sent.append((url, event, subject, data))


@pytest.fixture
async def redis() -> Any:
    client = fakeredis.aioredis.FakeRedis(decode_responses=True)
    store = TenantStore(client, KEYS)
    await store.create_tenant(
        "acme", TenantSettings(quotas=TenantQuotas(daily_usd=10), budget_webhook_url=OWN)
    )
    await store.create_tenant("globex", TenantSettings(quotas=TenantQuotas(monthly_tokens=100)))
    await store.create_tenant("initech", TenantSettings())  # no budget: never read
    yield client
    await client.aclose()


def watch(redis: Any, deliver: Recorder) -> BudgetWatch:
    return BudgetWatch(redis, KEYS, BudgetWarningsConfig(webhook_url=OPERATOR), deliver)


async def test_each_crossing_goes_to_its_url_once_across_processes(redis: Any) -> None:
    await redis.hset(KEYS.tenant_usage("acme", "20261203"), mapping={"cost_usd": "8.5"})
    await redis.hset(KEYS.tenant_usage("globex", "202612"), mapping={"tokens": "50"})
    first, second = Recorder(), Recorder()
    with structlog.testing.capture_logs() as logs:
        announced = await watch(redis, first).check(NOW)
        assert await watch(redis, second).check(NOW) == []
    assert sorted(c.id for c in announced) == [
        "bw_acme_20261203_usd_50",
        "bw_acme_20261203_usd_80",
        "bw_globex_202612_tokens_50",
    ]
    assert sorted((url, event, subject) for url, event, subject, _d in first.sent) == [
        (OWN, EVENT, "bw_acme_20261203_usd_50"),
        (OWN, EVENT, "bw_acme_20261203_usd_80"),
        (OPERATOR, EVENT, "bw_globex_202612_tokens_50"),
    ]
    assert second.sent == []
    lines = [line for line in logs if line["event"] == "budget threshold crossed"]
    assert len(lines) == 3
    assert {line["log_level"] for line in lines} == {"warning"}


async def test_a_delivery_that_could_not_be_queued_is_tried_again(redis: Any) -> None:
    await redis.hset(KEYS.tenant_usage("acme", "20261203"), mapping={"cost_usd": "5"})
    deliver = Recorder()
    deliver.failing = True
    checker = watch(redis, deliver)
    with pytest.raises(ConnectionError):
        await checker.check(NOW)
    assert not await redis.exists(KEYS.budget_warned("bw_acme_20261203_usd_50"))
    deliver.failing = False
    assert [c.id for c in await checker.check(NOW)] == ["bw_acme_20261203_usd_50"]
    assert len(deliver.sent) == 1
    assert await redis.exists(KEYS.budget_warned("bw_acme_20261203_usd_50"))


async def test_no_url_anywhere_logs_only(redis: Any) -> None:
    await redis.hset(KEYS.tenant_usage("globex", "202612"), mapping={"tokens": "100"})
    deliver = Recorder()
    checker = BudgetWatch(redis, KEYS, BudgetWarningsConfig(), deliver)
    with structlog.testing.capture_logs() as logs:
        assert len(await checker.check(NOW)) == 3
    assert deliver.sent == []
    assert [line["webhook"] for line in logs] == [False, False, False]


async def test_no_thresholds_no_warnings(redis: Any) -> None:
    await redis.hset(KEYS.tenant_usage("globex", "202612"), mapping={"tokens": "100"})
    deliver = Recorder()
    checker = BudgetWatch(redis, KEYS, BudgetWarningsConfig(thresholds_pct=()), deliver)
    assert await checker.check(NOW) == []
