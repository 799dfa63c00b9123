"""Dispatch order on a real Redis: fairness across tenants, weights across classes
(docs/queue-semantics.md#dispatch-order-weights-and-fairness)."""

from __future__ import annotations

import random
from collections import Counter

from anygate.broker import Broker
from anygate.broker.keys import CLASS_ORDER
from anygate.broker.scheduling import DispatchModel
from anygate.config import Priority
from tests.integration.helpers import claim_one, enqueue

I, S, B = Priority.INTERACTIVE, Priority.STANDARD, Priority.BATCH  # noqa: E741 - the classes read as a table


async def test_lua_dispatch_matches_the_pure_model(broker: Broker) -> None:
    """Random interleavings of enqueues and claims give the same (class, tenant) order."""
    rng = random.Random(7)
    model = DispatchModel({I: 16, S: 4, B: 1})
    tenants = {"t1": 1, "t2": 2, "t3": 3, "t4": 1}
    for _ in range(600):
        if rng.random() < 0.55:
            tenant = rng.choice(list(tenants))
            prio = rng.choice(CLASS_ORDER)
            model.enqueue(prio, tenant, tenants[tenant])
            await enqueue(broker, tenant, prio, weight=tenants[tenant])
        else:
            expected = model.claim()
            job = await claim_one(broker)
            got = (job.priority, job.tenant) if job else None
            assert got == expected


async def test_single_job_of_a_new_tenant_waits_at_most_one_round(broker: Broker) -> None:
    """A queues 2,000 jobs, then B queues 1: B starts before A's next N = 2 jobs."""
    for _ in range(2000):
        await enqueue(broker, "acme")
    first = await claim_one(broker)
    assert first is not None
    await enqueue(broker, "globex")
    next_two = [await claim_one(broker) for _ in range(2)]
    assert "globex" in [j.tenant for j in next_two if j]


async def test_interactive_jumps_a_queued_backlog(broker: Broker) -> None:
    for _ in range(300):
        await enqueue(broker, "acme", B)
        await enqueue(broker, "acme", S)
    await claim_one(broker)
    await enqueue(broker, "globex", I)
    job = await claim_one(broker)
    assert job is not None
    assert (job.priority, job.tenant) == (I, "globex")


async def test_saturated_shares_follow_the_weights_within_ten_percent(broker: Broker) -> None:
    for _ in range(700):
        for prio in CLASS_ORDER:
            await enqueue(broker, "acme", prio)
    jobs = []
    for _ in range(21):
        jobs += await broker.claim("openai", "w1", 20)
    shares = Counter(j.priority for j in jobs)
    total = len(jobs)
    assert total == 420
    for prio, weight in ((I, 16), (S, 4), (B, 1)):
        expected = total * weight / 21
        assert abs(shares[prio] - expected) <= 0.10 * expected, (prio, shares)


async def test_batch_gets_all_capacity_when_alone(broker: Broker) -> None:
    for _ in range(50):
        await enqueue(broker, "acme", B)
    jobs = await broker.claim("openai", "w1", 50)
    assert len(jobs) == 50


async def test_claim_takes_no_more_than_the_free_slots(broker: Broker) -> None:
    for _ in range(10):
        await enqueue(broker)
    assert len(await broker.claim("openai", "w1", 3)) == 3
    assert len(await broker.claim("openai", "w1", 100)) == 7
    assert await broker.claim("openai", "w1", 100) == []
