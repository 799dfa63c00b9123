"""The coalescer: one call per group and loop turn, each caller its own outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from anygate.broker.coalescer import Coalescer


class Recorder:
    """A ``send`` that records its calls and answers each item by a rule."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[int]]] = []
        self.fail_call: BaseException | None = None

    async def send(self, key: str, items: Sequence[int]) -> list[int | BaseException]:
        self.calls.append((key, list(items)))
        await asyncio.sleep(0)
        if self.fail_call is not None:
            raise self.fail_call
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]


async def test_one_call_per_group_and_turn_in_submission_order() -> None:
    rec = Recorder()
    c: Coalescer[str, int, int] = Coalescer(rec.send)
    futures = [c.submit("a", 2), c.submit("b", 4), c.submit("a", 6)]
    assert await asyncio.gather(*futures) == [20, 40, 60]
    assert sorted(rec.calls) == [("a", [2, 6]), ("b", [4])]


async def test_an_items_error_reaches_its_caller_alone() -> None:
    rec = Recorder()
    c: Coalescer[str, int, int] = Coalescer(rec.send)
    good, bad = c.submit("a", 2), c.submit("a", 3)
    assert await good == 20
    with pytest.raises(ValueError, match="odd 3"):
        await bad
    assert rec.calls == [("a", [2, 3])]


async def test_a_failed_call_reaches_each_of_its_callers_and_no_other_group() -> None:
    rec = Recorder()
    c: Coalescer[str, int, int] = Coalescer(rec.send)
    rec.fail_call = ConnectionError("redis away")
    a1, a2 = c.submit("a", 2), c.submit("a", 4)
    for f in (a1, a2):
        with pytest.raises(ConnectionError):
            await f
    rec.fail_call = None
    assert await c.submit("b", 8) == 80, "a later call is unaffected"


async def test_calls_in_later_turns_are_separate() -> None:
    rec = Recorder()
    c: Coalescer[str, int, int] = Coalescer(rec.send)
    assert await c.submit("a", 2) == 20
    assert await c.submit("a", 4) == 40
    assert rec.calls == [("a", [2]), ("a", [4])]


async def test_a_full_group_goes_at_once() -> None:
    rec = Recorder()
    c: Coalescer[str, int, int] = Coalescer(rec.send, max_items=2)
    futures = [c.submit("a", i) for i in (2, 4, 6)]
    await asyncio.gather(*futures)
    assert rec.calls == [("a", [2, 4]), ("a", [6])]


async def test_a_cancelled_caller_does_not_stop_the_others() -> None:
    rec = Recorder()
    c: Coalescer[str, int, int] = Coalescer(rec.send)
    gone, kept = c.submit("a", 2), c.submit("a", 4)
    gone.cancel()
    assert await kept == 40
    assert rec.calls == [("a", [2, 4])], "the call still carries it: its job may be done"


async def test_a_send_with_the_wrong_count_fails_every_caller() -> None:
    async def short(key: str, items: Sequence[int]) -> list[int | BaseException]:
        return [1]

    c: Coalescer[str, int, int] = Coalescer(short)
    futures = [c.submit("a", 1), c.submit("a", 2)]
    for f in futures:
        with pytest.raises(RuntimeError, match="1 outcomes for 2 items"):
            await f
