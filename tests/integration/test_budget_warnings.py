"""Budget warnings (docs/operations.md#budget-warnings) with real control processes: each
threshold crossed is announced once (a signed ``budget.threshold_crossed`` webhook and one
``budget threshold crossed`` line), with two control processes running and after a restart, to
the tenant's own URL or else the operator's; the next period announces again."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from anygate.broker import KeySpace
from anygate.broker.quotas import seconds_until_reset, usage_periods
from anygate.config import BudgetWarningsConfig
from anygate.ops.embedded_redis import EmbeddedRedis
from anygate.workers.budget_policy import MARK_MARGIN_S
from anygate.workers.budget_warnings import EVENT, BudgetWatch
from anygate.workers.webhooks import verify
from tests.support.configs import TENANT_KEYS, config_tree, hash_key
from tests.support.eventually import eventually
from tests.support.stack import Stack, running_stack
from tests.support.webhooks import WebhookReceiver, webhook_receiver

SECRET = "budget-webhook-secret-0123456789"


@pytest.fixture
def receivers() -> Iterator[tuple[WebhookReceiver, WebhookReceiver]]:
    """The tenant's own receiver, and the operator's."""
    with webhook_receiver() as tenant, webhook_receiver() as operator:
        yield tenant, operator


@pytest.fixture
def stack(
    tmp_path: Path,
    redis_server: EmbeddedRedis,
    namespace: str,
    receivers: tuple[WebhookReceiver, WebhookReceiver],
) -> Iterator[Stack]:
    tenant_hook, operator_hook = receivers
    secret_file = tmp_path / "webhook.secret"
    secret_file.write_text(SECRET)
    tree = config_tree(redis_server.url, namespace)
    tree["security"] = {"webhook_secret": f"file:{secret_file}"}
    tree["budget_warnings"] = {"webhook_url": operator_hook.url, "check_interval_s": 1}
    tree["tenants"] = [
        {
            "id": "acme",
            "api_key_sha256": [hash_key(TENANT_KEYS["acme"])],
            "quotas": {"daily_usd": 1.0},
            "budget_webhook_url": tenant_hook.url,
        },
        {
            "id": "globex",
            "api_key_sha256": [hash_key(TENANT_KEYS["globex"])],
            "quotas": {"monthly_tokens": 1000},
        },
    ]
    with running_stack(tmp_path, tree) as s:
        yield s


def _spend(stack: Stack, tenant: str, period: str, **totals: float) -> None:
    """Set a usage hash's totals, as finish-5.lua leaves them (a budget takes a while to spend
    through real calls)."""
    tree = stack.tree["redis"]
    r = redis.Redis.from_url(tree["url"], decode_responses=True)
    r.hset(KeySpace(tree["namespace"]).tenant_usage(tenant, period), mapping=totals)
    r.close()


def _payloads(receiver: WebhookReceiver) -> list[dict[str, Any]]:
    return [orjson.loads(d.body)["data"] for d in receiver.seen]


def _logged(stack: Stack) -> list[dict[str, Any]]:
    lines = []
    for proc in stack.started:
        for line in Path(proc.log_path).read_text(encoding="utf-8").splitlines():
            if line.startswith("{") and '"budget threshold crossed"' in line:
                lines.append(orjson.loads(line))
    return lines


async def test_each_threshold_is_announced_once_per_period_signed(
    stack: Stack, receivers: tuple[WebhookReceiver, WebhookReceiver]
) -> None:
    tenant_hook, operator_hook = receivers
    stack.start_control()
    stack.start_control()  # two control processes: still one announcement per threshold
    periods = usage_periods(datetime.now(UTC))
    _spend(stack, "acme", periods.day, cost_usd=0.85, tokens=10)
    _spend(stack, "globex", periods.month, tokens=600)

    await eventually(lambda: len(tenant_hook.seen) >= 2, what="acme's 50 and 80 % warnings")
    await eventually(lambda: len(operator_hook.seen) >= 1, what="globex's 50 % warning")
    await asyncio.sleep(2.5)  # a few more checks by both processes: nothing more
    acme = _payloads(tenant_hook)
    assert sorted(p["threshold_pct"] for p in acme) == [50, 80]
    assert {(p["tenant"], p["period"], p["measure"]) for p in acme} == {("acme", "day", "usd")}
    assert acme[0]["used"] == pytest.approx(0.85)
    assert acme[0]["budget"] == 1.0
    assert [(p["tenant"], p["period"], p["threshold_pct"]) for p in _payloads(operator_hook)] == [
        ("globex", "month", 50)
    ]
    for delivery in tenant_hook.seen + operator_hook.seen:
        assert delivery.event == EVENT
        assert orjson.loads(delivery.body)["type"] == EVENT
        assert verify(SECRET.encode(), delivery.body, delivery.headers["x-anygate-signature"])
    assert len({d.delivery_id for d in tenant_hook.seen}) == 2

    # a restart of every control process announces nothing again
    for proc in list(stack.controls):
        proc.terminate()
        stack.controls.remove(proc)
    stack.start_control()
    await asyncio.sleep(3)
    assert len(tenant_hook.seen) == 2
    assert len(operator_hook.seen) == 1

    # the next threshold, once
    _spend(stack, "acme", periods.day, cost_usd=1.02)
    await eventually(lambda: len(tenant_hook.seen) >= 3, what="acme's 100 % warning")
    await asyncio.sleep(2)
    assert [p["threshold_pct"] for p in _payloads(tenant_hook)][2:] == [100]
    lines = _logged(stack)
    assert sorted((e["tenant"], e["threshold_pct"]) for e in lines) == [
        ("acme", 50),
        ("acme", 80),
        ("acme", 100),
        ("globex", 50),
    ]
    assert {e["level"] for e in lines} == {"warning"}


async def test_a_new_period_announces_again_and_marks_outlive_their_period(
    stack: Stack, receivers: tuple[WebhookReceiver, WebhookReceiver]
) -> None:
    """The control plane's check with its clock moved to tomorrow (the same code its cron job
    runs), against the marks a real control process left today."""
    tenant_hook, _operator_hook = receivers
    stack.start_control()
    now = datetime.now(UTC)
    today, tomorrow = usage_periods(now), usage_periods(now + timedelta(days=1))
    _spend(stack, "acme", today.day, cost_usd=0.6)
    await eventually(lambda: len(tenant_hook.seen) >= 1, what="today's 50 % warning")

    tree = stack.tree["redis"]
    keys = KeySpace(tree["namespace"])
    r = AsyncRedis.from_url(tree["url"], decode_responses=True)
    try:
        sent: list[tuple[str, str, str, dict[str, Any]]] = []

        async def deliver(url: str, event: str, subject: str, data: dict[str, Any]) -> None:
            sent.append((url, event, subject, data))

        watch = BudgetWatch(r, keys, BudgetWarningsConfig(), deliver)
        assert await watch.check(now) == [], "today's crossing is marked already"
        mark = keys.budget_warned(f"bw_acme_{today.day}_usd_50")
        ttl = await r.ttl(mark)
        assert ttl > seconds_until_reset("day", now) + MARK_MARGIN_S - 30

        _spend(stack, "acme", tomorrow.day, cost_usd=0.55)
        later = now + timedelta(days=1)
        announced = await watch.check(later)
        assert [(c.period_id, c.threshold_pct) for c in announced] == [(tomorrow.day, 50)]
        assert [(u, e, s) for u, e, s, _d in sent] == [
            (tenant_hook.url, EVENT, f"bw_acme_{tomorrow.day}_usd_50")
        ]
        assert await watch.check(later) == []
        assert await BudgetWatch(r, keys, BudgetWarningsConfig(), deliver).check(later) == [], (
            "a fresh process (no memory of its own) sees the mark"
        )
    finally:
        await r.aclose()
