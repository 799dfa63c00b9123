"""The Redis sliding window (ratewindow-3.lua) answers exactly as the pure model does, on random
sequences of takes and settlements, and one window is shared by every client of the namespace."""

from __future__ import annotations

import asyncio
import random

from anygate.broker import Broker
from anygate.broker.rate_window import SlidingWindow

WINDOW = 1_000


async def test_lua_matches_the_model_on_random_sequences(broker: Broker) -> None:
    rng = random.Random(7)
    for trial in range(20):
        limit = rng.randint(1, 60)
        model = SlidingWindow(WINDOW, limit)
        name = f"trial{trial}"
        now, admitted_ids = 1_000_000, []
        for step in range(120):
            now += rng.choice([0, 0, 1, 5, 50, 200, 700])
            if admitted_ids and rng.random() < 0.2:
                entry, actual = rng.choice(admitted_ids), rng.randint(1, 30)
                model.settle(entry, actual)
                await broker.settle_rate(name, WINDOW, entry, actual, now_ms=now)
                continue
            entry, cost = f"job{step}:1", rng.randint(1, 30)
            expected = model.admit(now, entry, cost)
            got = await broker.take_rate(name, WINDOW, limit, entry, cost, now_ms=now)
            assert got == expected, (trial, step, now, cost)
            if got.admitted:
                admitted_ids.append(entry)


async def test_lua_waiting_line_matches_the_model(broker: Broker) -> None:
    """``wait``: refused entries join the line and come back, on time, late or never."""
    rng = random.Random(11)
    for trial in range(20):
        limit = rng.randint(1, 40)
        model = SlidingWindow(WINDOW, limit)
        name = f"line{trial}"
        now, waiting, admitted_ids = 1_000_000, [], []
        for step in range(150):
            now += rng.choice([0, 0, 1, 5, 50, 200, 700])
            roll = rng.random()
            if admitted_ids and roll < 0.1:
                entry, actual = rng.choice(admitted_ids), rng.randint(1, 30)
                model.settle(entry, actual)
                await broker.settle_rate(name, WINDOW, entry, actual, now_ms=now)
                continue
            if waiting and roll < 0.6:
                entry, cost = waiting.pop(rng.randrange(len(waiting)))
            else:
                entry, cost = f"job{step}:1", rng.choice([1, 1, rng.randint(1, 45)])
            expected = model.wait(now, entry, cost)
            got = await broker.rates.wait(name, WINDOW, limit, entry, cost, now_ms=now)
            assert got == expected, (trial, step, now, cost)
            if got.admitted:
                admitted_ids.append(entry)
            elif got.retry_after_ms > 0:
                waiting.append((entry, cost))


async def test_concurrent_takers_share_one_window(broker: Broker) -> None:
    """Many workers asking at once (one Redis clock): exactly the limit gets through."""
    answers = await asyncio.gather(
        *(broker.take_rate("shared", 60_000, 25, f"job{i}:1", 1) for i in range(100))
    )
    assert sum(a.admitted for a in answers) == 25
    refused = [a.retry_after_ms for a in answers if not a.admitted]
    assert all(0 < wait <= 60_000 for wait in refused)


async def test_a_request_above_the_limit_is_never_admitted(broker: Broker) -> None:
    answer = await broker.take_rate("small", WINDOW, 10, "job:1", 11)
    assert (answer.admitted, answer.retry_after_ms) == (False, -1)
