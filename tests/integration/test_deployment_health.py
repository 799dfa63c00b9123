"""The shared health of a deployment (health-1.lua) on a real Redis: the 429 cool-down, the
circuit breaker's opening rules, its single half-open probe, and the messages that keep every
process's local view (HealthView) in step."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from anygate.broker import Broker, Subscriptions, create_redis
from anygate.broker.deployment_health import Gate, HealthView
from anygate.config import AnygateConfig
from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.configs import build_config

DEP = "openai:gpt-4o-mini"


@pytest.fixture
async def breaker_broker(redis_server: EmbeddedRedis, namespace: str) -> AsyncIterator[Broker]:
    config: AnygateConfig = build_config(
        redis_server.url,
        namespace,
        queue={
            "breaker": {
                "consecutive_failures": 3, "error_rate": 0.5, "min_calls": 6, "window_s": 5,
                "cooldown_s": 0.3,
            },
            "visibility_timeout_s": 2.0,
        },
    )  # fmt: skip
    redis = create_redis(config.redis)
    yield Broker(redis, config)
    await redis.aclose()


async def test_consecutive_failures_open_the_breaker_and_a_success_resets_the_count(
    breaker_broker: Broker,
) -> None:
    b = breaker_broker
    assert await b.report_failure(DEP, "j1") == "closed"
    assert await b.report_failure(DEP, "j2") == "closed"
    await b.report_success(DEP, "j3")  # not consecutive any more
    assert await b.report_failure(DEP, "j4") == "closed"
    assert await b.report_failure(DEP, "j5") == "closed"
    assert await b.report_failure(DEP, "j6") == "open"
    assert (await b.probe(DEP, "j7"))[0] == "open"


async def test_an_error_rate_over_the_window_opens_the_breaker(breaker_broker: Broker) -> None:
    b = breaker_broker
    # alternate failures and successes: never 3 in a row, but half of the calls fail
    states = []
    for i in range(6):
        if i % 2 == 0:
            states.append(await b.report_failure(DEP, f"f{i}"))
        else:
            await b.report_success(DEP, f"s{i}")
    assert states[:-1] == ["closed", "closed"]
    # 3 failures in 6 counted calls: no more than half; the next failure makes 4 of 7
    assert await b.report_failure(DEP, "f6") == "open"


async def test_after_the_cooldown_exactly_one_probe_goes_through(breaker_broker: Broker) -> None:
    b = breaker_broker
    for i in range(3):
        await b.report_failure(DEP, f"f{i}")
    assert (await b.probe(DEP, "early"))[0] == "open"
    await asyncio.sleep(0.35)
    verdicts = await asyncio.gather(*(b.probe(DEP, f"p{i}") for i in range(10)))
    assert sorted(v for v, _ms in verdicts).count("probe") == 1
    prober = next(f"p{i}" for i, (v, _ms) in enumerate(verdicts) if v == "probe")
    # a success of another call does not close it; the probe's does
    assert await b.report_success(DEP, "someone-else") == "half"
    assert await b.report_success(DEP, prober) == "closed"
    assert (await b.probe(DEP, "after"))[0] == "ok"


async def test_a_failed_probe_opens_the_breaker_again(breaker_broker: Broker) -> None:
    b = breaker_broker
    for i in range(3):
        await b.report_failure(DEP, f"f{i}")
    await asyncio.sleep(0.35)
    assert (await b.probe(DEP, "p"))[0] == "probe"
    assert await b.report_failure(DEP, "p") == "open"
    verdict, ms = await b.probe(DEP, "q")
    assert verdict == "open"
    assert 200 < ms <= 300


async def test_a_cool_down_pauses_the_deployment_and_then_lapses(breaker_broker: Broker) -> None:
    b = breaker_broker
    await b.cool_down(DEP, 0.3)
    verdict, ms = await b.probe(DEP, "x")
    assert verdict == "cool"
    assert 200 < ms <= 300
    await b.cool_down(DEP, 0.1)  # a shorter pause does not shorten the longer one
    assert (await b.probe(DEP, "x"))[0] == "cool"
    await asyncio.sleep(0.35)
    assert (await b.probe(DEP, "x"))[0] == "ok"
    assert await b.redis.exists(b.keys.deployment_health(DEP)) == 0  # nothing left behind


async def test_every_process_view_follows_the_published_state(breaker_broker: Broker) -> None:
    b = breaker_broker
    view = HealthView()
    subs = Subscriptions(b.redis)
    await subs.start()
    try:
        await subs.listen(b.keys.health_channel, view.apply)
        await asyncio.sleep(0.05)
        assert view.clearance(DEP).gate is Gate.CALL
        assert not view.dirty(DEP)
        await b.report_failure(DEP, "f1")
        await _until(lambda: view.dirty(DEP))
        await b.cool_down(DEP, 0.2)
        await _until(lambda: view.clearance(DEP).gate is Gate.COOLING)
        assert not view.healthy(DEP)
        await asyncio.sleep(0.25)
        assert view.clearance(DEP).gate is Gate.CALL
        await b.report_failure(DEP, "f2")
        await b.report_failure(DEP, "f3")
        await _until(lambda: view.clearance(DEP).gate is Gate.OPEN)
        await asyncio.sleep(0.35)
        assert view.clearance(DEP).gate is Gate.ASK
        assert view.healthy(DEP)  # routing sends it the job that will probe it
        assert (await b.probe(DEP, "p"))[0] == "probe"
        await b.report_success(DEP, "p")
        await _until(lambda: view.clearance(DEP).gate is Gate.CALL and not view.dirty(DEP))
        # a view that missed everything is healed by a peek
        fresh = HealthView()
        await b.cool_down(DEP, 0.5)
        fresh.apply_peek(DEP, await b.peek_health(DEP))
        assert fresh.clearance(DEP).gate is Gate.COOLING
    finally:
        await subs.close()


async def _until(condition: object, timeout: float = 2.0) -> None:
    assert callable(condition)
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "state never arrived"
        await asyncio.sleep(0.01)
