"""A process's link to Redis (broker/redis_link.py): which errors are an outage, retries with
backoff that end when Redis answers or the process stops, and a log that says each outage
once: one warning when Redis goes, one line when it is back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.exceptions as rex
from structlog.testing import capture_logs

from anygate.broker import redis_link
from anygate.broker.redis_link import RedisLink, is_outage

LOST = "redis unreachable; reconnecting"
BACK = "redis reachable again"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _events(logs: list[dict[str, Any]]) -> list[str]:
    return [entry["event"] for entry in logs]


class TestIsOutage:
    @pytest.mark.parametrize(
        "exc",
        [
            rex.ConnectionError("refused"),
            rex.TimeoutError(),
            rex.BusyLoadingError("LOADING"),
            rex.ReadOnlyError("READONLY"),
            rex.WatchError("connection lost while watching"),
            ConnectionRefusedError(),
            TimeoutError(),
            OSError("reset"),
        ],
    )
    def test_errors_that_pass_when_redis_is_back(self, exc: BaseException) -> None:
        assert is_outage(exc)

    @pytest.mark.parametrize(
        "exc",
        [
            rex.AuthenticationError("WRONGPASS"),
            rex.AuthorizationError("NOPERM"),
            rex.ResponseError("ERR unknown command"),
            ValueError("a bug"),
        ],
    )
    def test_errors_that_waiting_does_not_fix(self, exc: BaseException) -> None:
        assert not is_outage(exc)


class TestLog:
    def test_one_warning_per_outage_and_one_line_once_redis_answers_for_a_second(self) -> None:
        clock = Clock()
        link = RedisLink("worker w1", clock=clock)
        with capture_logs() as logs:
            link.lost(rex.ConnectionError("refused"))
            clock.now += 3
            link.lost(rex.ConnectionError("refused"))  # another part of the process
            assert link.down
            link.back()
            assert not link.down, "it answered"
            clock.now += 1
            link.back()
            link.back()
        assert _events(logs) == [LOST, BACK]
        assert logs[0]["process"] == "worker w1"
        assert logs[0]["error"] == "ConnectionError: refused"
        assert logs[1]["away_s"] == 3.0

    def test_a_late_error_of_a_command_sent_during_the_outage_is_the_same_outage(self) -> None:
        clock = Clock()
        link = RedisLink("control", clock=clock)
        with capture_logs() as logs:
            link.lost(rex.TimeoutError())
            clock.now += 10
            link.back()  # the watch's ping got through
            clock.now += 0.1
            link.lost(rex.TimeoutError())  # a command that waited its whole timeout
            clock.now += 0.5
            link.back()
            clock.now += 1
            link.back()
        assert _events(logs) == [LOST, BACK]

    def test_nothing_is_logged_while_redis_answers(self) -> None:
        with capture_logs() as logs:
            RedisLink("api").back()
        assert logs == []


class TestRetry:
    async def test_an_outage_is_retried_until_the_step_succeeds(self) -> None:
        clock = Clock()
        link = RedisLink("api", clock=clock)
        calls = 0

        async def step() -> str:
            nonlocal calls
            calls += 1
            if calls < 4:
                raise rex.ConnectionError("refused")
            return "seeded"

        with capture_logs() as logs:
            assert await link.retry(step) == "seeded"
            clock.now += 1
            link.back()  # the watch, a second later
        assert calls == 4
        assert _events(logs) == [LOST, BACK]

    async def test_an_error_waiting_cannot_fix_is_raised_at_once(self) -> None:
        calls = 0

        async def step() -> None:
            nonlocal calls
            calls += 1
            raise rex.AuthenticationError("WRONGPASS")

        with pytest.raises(rex.AuthenticationError):
            await RedisLink("api").retry(step)
        assert calls == 1

    async def test_a_stopping_process_stops_waiting_at_once(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(redis_link, "FIRST_WAIT_S", 60.0)  # every wait would be long
        stopping = asyncio.Event()

        async def step() -> None:
            raise rex.ConnectionError("refused")

        async def stop_soon() -> None:
            await asyncio.sleep(0.05)
            stopping.set()

        stopper = asyncio.create_task(stop_soon())
        async with asyncio.timeout(2):
            assert await RedisLink("worker").retry(step, until=stopping) is None
        await stopper


class FlakyRedis:
    """Answers PING as told by ``up``."""

    def __init__(self) -> None:
        self.up = True

    async def ping(self) -> bool:
        if not self.up:
            raise rex.ConnectionError("refused")
        return True


async def test_the_watch_notices_an_outage_and_its_end_while_the_process_is_idle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(redis_link, "WATCH_INTERVAL_S", 0.01)
    monkeypatch.setattr(redis_link, "SETTLE_S", 0.05)
    redis = FlakyRedis()
    link = RedisLink("api")
    with capture_logs() as logs:
        watch = asyncio.create_task(link.watch(redis))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        redis.up = False
        await asyncio.sleep(0.1)
        assert link.down
        redis.up = True
        await asyncio.sleep(0.2)
        watch.cancel()
    assert _events(logs) == [LOST, BACK]
    assert not link.down
