"""The shared health of a deployment (health-1.lua) on a real Redis: the 429 cool-down, the
circuit breaker's opening rules, the single probe after either pause, the ramp that follows, and
the messages that keep every process's local view (HealthView) in step."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from anygate.broker import Broker, Subscriptions, create_redis
from anygate.broker.deployment_health import Gate, HealthView
from anygate.config import AnygateConfig
from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.configs import build_config
from tests.support.eventually import eventually

DEP = "openai:gpt-4o-mini"


@pytest.fixture
async def breaker_broker(redis_server: EmbeddedRedis, namespace: str) -> AsyncIterator[Broker]:
    config: AnygateConfig = build_config(
        redis_server.url,
        namespace,
        queue={
            "breaker": {
                "consecutive_failures": 3,
                "error_rate": 0.5,
                "min_calls": 6,
                "window_s": 5,
                "cooldown_s": 0.3,
            },
            "visibility_timeout_s": 2.0,
            "resume_ramp_s": 0.8,
        },
    )
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
    assert (await b.probe(DEP, "j7")).verdict == "open"


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
    assert (await b.probe(DEP, "early")).verdict == "open"
    # Sleeps in this module are the point: they let a cool-down or a ramp step run its length.
    await asyncio.sleep(0.35)
    answers = await asyncio.gather(*(b.probe(DEP, f"p{i}") for i in range(10)))
    verdicts = [a.verdict for a in answers]
    assert verdicts.count("probe") == 1
    assert verdicts.count("wait") == 9, "the others wait for its verdict"
    prober = f"p{verdicts.index('probe')}"
    assert (await b.probe(DEP, prober)).verdict == "probe", "asked again: still the probe"
    # a success of another call does not close it; the probe's does
    assert await b.report_success(DEP, "someone-else") == "half"
    assert await b.report_success(DEP, prober) == "closed"
    assert (await b.probe(DEP, "after")).verdict == "ok", "the ramp admits its first call"


async def test_a_failed_probe_opens_the_breaker_again(breaker_broker: Broker) -> None:
    b = breaker_broker
    for i in range(3):
        await b.report_failure(DEP, f"f{i}")
    await asyncio.sleep(0.35)
    assert (await b.probe(DEP, "p")).verdict == "probe"
    assert await b.report_failure(DEP, "p") == "open"
    answer = await b.probe(DEP, "q")
    assert answer.verdict == "open"
    assert 200 < answer.ms <= 300


async def test_a_cool_down_pauses_the_deployment_then_one_probe_tests_it(
    breaker_broker: Broker,
) -> None:
    b = breaker_broker
    await b.cool_down(DEP, 0.3)
    answer = await b.probe(DEP, "x")
    assert answer.verdict == "cool"
    assert 200 < answer.ms <= 300
    await b.cool_down(DEP, 0.1)  # a shorter pause does not shorten the longer one
    assert (await b.probe(DEP, "x")).verdict == "cool"
    await asyncio.sleep(0.35)
    answers = await asyncio.gather(*(b.probe(DEP, f"c{i}") for i in range(8)))
    assert [a.verdict for a in answers].count("probe") == 1, "one call tests the storm first"
    prober = f"c{[a.verdict for a in answers].index('probe')}"
    waiting = [a for a in answers if a.verdict == "wait"]
    assert len(waiting) == 7
    assert all(0 < a.ms <= 500 for a in waiting)
    await b.report_success(DEP, prober)  # the storm is over: the ramp begins
    assert (await b.probe(DEP, "next")).verdict == "ok"


async def test_a_429_to_the_probe_pauses_again_and_a_success_starts_the_ramp(
    breaker_broker: Broker, redis: Redis
) -> None:
    b = breaker_broker
    await b.cool_down(DEP, 0.1)
    await asyncio.sleep(0.15)
    assert (await b.probe(DEP, "p1")).verdict == "probe"
    await b.cool_down(DEP, 0.1)  # the probe met the storm: another Retry-After
    assert (await b.probe(DEP, "x")).verdict == "cool"
    await asyncio.sleep(0.15)
    assert (await b.probe(DEP, "p2")).verdict == "probe", "a new probe after the new pause"
    await b.report_success(DEP, "p2")
    # the ramp: 1 call at first, then 2, 4, … as it doubles every ramp_s / 8 (0.1 s)
    first = [(await b.probe(DEP, f"r{i}")).verdict for i in range(4)]
    assert first == ["ok", "ramp", "ramp", "ramp"]
    refused = await b.probe(DEP, "later")
    assert refused.verdict == "ramp"
    assert 0 < refused.ms <= 100, "ask again when the next doubling is due"
    assert refused.spread_ms > 0, "spread over what is left of the ramp"
    await asyncio.sleep(0.25)  # two doublings later: up to 4 admitted in all
    more = [(await b.probe(DEP, f"s{i}")).verdict for i in range(5)]
    assert more.count("ok") == 3
    await asyncio.sleep(0.6)
    assert (await b.probe(DEP, "done")).verdict == "steady", "the ramp is over"
    assert await redis.exists(b.keys.deployment_health(DEP)) == 0  # nothing left behind


async def test_a_pause_nobody_probes_is_forgotten(breaker_broker: Broker, redis: Redis) -> None:
    """The settling state of a deployment nobody calls any more does not linger."""
    b = breaker_broker
    await b.cool_down(DEP, 0.2)
    ttl = await redis.pttl(b.keys.deployment_health(DEP))
    assert 0 < ttl <= 200 + 600_000


async def test_every_process_view_follows_the_published_state(
    breaker_broker: Broker, redis: Redis
) -> None:
    b = breaker_broker
    view = HealthView()
    subs = Subscriptions(redis)
    await subs.start()
    try:
        await subs.listen(b.keys.health_channel, view.apply)
        await asyncio.sleep(0.05)  # the point: nothing published meanwhile changes the view
        assert view.clearance(DEP).gate is Gate.CALL
        assert not view.dirty(DEP)
        await b.report_failure(DEP, "f1")
        await eventually(lambda: view.dirty(DEP), timeout=2.0, interval=0.01)
        await b.cool_down(DEP, 0.2)
        await eventually(
            lambda: view.clearance(DEP).gate is Gate.COOLING, timeout=2.0, interval=0.01
        )
        assert not view.healthy(DEP)
        await asyncio.sleep(0.25)
        assert view.clearance(DEP).gate is Gate.ASK, "after a pause: ask Redis (the probe)"
        await b.report_failure(DEP, "f2")
        await b.report_failure(DEP, "f3")
        await eventually(lambda: view.clearance(DEP).gate is Gate.OPEN, timeout=2.0, interval=0.01)
        await asyncio.sleep(0.35)
        assert view.clearance(DEP).gate is Gate.ASK
        assert view.healthy(DEP)  # routing sends it the job that will probe it
        assert (await b.probe(DEP, "p")).verdict == "probe"
        await b.report_success(DEP, "p")
        await eventually(lambda: not view.dirty(DEP), timeout=2.0, interval=0.01)
        assert view.clearance(DEP).gate is Gate.ASK, "ramping: still asking"
        await asyncio.sleep(0.85)
        assert (await b.probe(DEP, "end")).verdict == "steady"
        await eventually(lambda: view.clearance(DEP).gate is Gate.CALL, timeout=2.0, interval=0.01)
        # a view that missed everything is healed by a peek
        fresh = HealthView()
        await b.cool_down(DEP, 0.5)
        fresh.apply_peek(DEP, await b.peek_health(DEP))
        assert fresh.clearance(DEP).gate is Gate.COOLING
    finally:
        await subs.close()
