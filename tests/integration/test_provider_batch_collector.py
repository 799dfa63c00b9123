"""The collector's unhappy paths, on a real Redis with an in-process provider: a batch the
provider refuses, a control process that died between taking jobs and sending them, a
deployment that left the configuration, a line the provider's format cannot carry, two control
processes at once, and a tick that dies half-way through recording a batch's answers. Each
job still ends exactly once, live or answered, with its counts exact."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from anygate.broker import Broker, KeySpace, NewJob, new_job_id
from anygate.broker.errors import UpstreamRejectedError, UpstreamTransientError
from anygate.broker.script_calls.provider_batch import parked_queue
from anygate.config import AnygateConfig, Priority, parse_config
from anygate.ops.embedded_redis import EmbeddedRedis
from anygate.workers.provider_batch.collector import Collector
from anygate.workers.provider_batch.lines import BatchRequest, ReadBack, done, not_run
from anygate.workers.provider_batch.queues import BatchQueue
from anygate.workers.provider_batch.remote import RemoteBatch, RemoteState
from tests.support.configs import config_tree

CHAT = "/v1/chat/completions"
QUEUE = parked_queue(CHAT, "openai:gpt-4o-mini")
HOUR_MS = 3_600_000


class FakeProvider:
    """A provider batch API in memory: what it was sent, and how each batch ends."""

    def __init__(self) -> None:
        self.sent: list[list[str]] = []
        self.refuse_submit = False
        self.ended = RemoteState.DONE
        self.answer_every = 1
        self.unfit_ids: set[str] = set()
        self.cancels = 0

    def client(self, queue: BatchQueue, http: httpx.AsyncClient) -> FakeClient:
        return FakeClient(self)


class FakeClient:
    def __init__(self, provider: FakeProvider) -> None:
        self._p = provider

    def unfit(self, request: BatchRequest) -> UpstreamRejectedError | None:
        if request.job_id in self._p.unfit_ids:
            return UpstreamRejectedError("cannot carry it", code="untranslatable_field")
        return None

    async def submit(
        self, upstream_model: str, endpoint: str, requests: Sequence[BatchRequest], label: str
    ) -> RemoteBatch:
        if self._p.refuse_submit:
            raise UpstreamTransientError("batch API unavailable", upstream_status=503)
        self._p.sent.append([r.job_id for r in requests])
        return RemoteBatch(f"remote-{len(self._p.sent)}", RemoteState.RUNNING)

    async def get(self, batch_id: str) -> RemoteBatch:
        return RemoteBatch(batch_id, self._p.ended)

    async def cancel(self, batch_id: str) -> RemoteBatch:
        self._p.cancels += 1
        return RemoteBatch(batch_id, RemoteState.CANCELLED)

    async def results(self, batch: RemoteBatch, job_ids: list[str]) -> ReadBack:
        index = int(batch.id.removeprefix("remote-")) - 1
        back = ReadBack()
        for i, job_id in enumerate(self._p.sent[index]):
            if i % self._p.answer_every == 0:
                answer = {"choices": [{"message": {"content": f"batched {job_id}"}}]}
                back.results[job_id] = done(job_id, {**answer, "usage": _usage()})
            else:
                back.results[job_id] = not_run(job_id)
        return back

    async def forget(self, batch: RemoteBatch) -> None:
        return None


def _usage() -> dict[str, int]:
    return {"prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000}


def make_config(
    redis_server: EmbeddedRedis, namespace: str, *, batch_api: bool = True
) -> AnygateConfig:
    tree = config_tree(redis_server.url, namespace)
    tree["models"]["gpt-4o-mini"]["deployments"][0]["batch_api"] = batch_api
    tree["provider_batches"] = {
        "min_room_s": 60,
        "live_reserve_s": 10,
        "collect_s": 0.01,
        "poll_s": 0.01,
        "cancel_wait_s": 1,
        "submit_wait_s": 0.2,
    }
    return parse_config(tree)


@pytest.fixture
def config(redis_server: EmbeddedRedis, namespace: str) -> AnygateConfig:
    return make_config(redis_server, namespace)


def pool_keys(broker: Broker) -> KeySpace:
    """Where the pool's counters live (its shard's keys on a cluster)."""
    return broker.keys.on(broker.keys.shard_of_pool("openai"))


async def park(broker: Broker, n: int, *, cutoff_ms: int | None = None) -> list[str]:
    ids = []
    for i in range(n):
        job_id = new_job_id(broker.keys.shard_of_pool("openai"))
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"q{i}"}]}
        job = NewJob(
            tenant="acme",
            pool="openai",
            endpoint=CHAT,
            model="gpt-4o-mini",
            body=orjson.dumps(body),
            priority=Priority.BATCH,
            parked_for=QUEUE,
            cutoff_ms=cutoff_ms or int(time.time() * 1000) + HOUR_MS,
        )
        await broker.enqueue(job, job_id)
        ids.append(job_id)
    return ids


async def tick_until_idle(collector: Collector, ticks: int = 5) -> None:
    for _ in range(ticks):
        await collector.tick()
        await asyncio.sleep(0.03)


async def statuses(broker: Broker, ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for job_id in ids:
        record = await broker.get("acme", job_id)
        assert record is not None
        out.setdefault(f"{record.status.value}/{record.execution}", []).append(job_id)
    return out


async def exact_counts(broker: Broker, redis: Redis) -> dict[str, int]:
    stats = await redis.hgetall(broker.keys.stats("openai"))
    return {
        "queued": int(stats.get("queued", 0)),
        "inflight": int(stats.get("inflight", 0)),
        "tqueued": int(await redis.hget(pool_keys(broker).prefix + "tqueued", "acme") or 0),
        "tinflight": int(await redis.hget(pool_keys(broker).prefix + "tinflight", "acme") or 0),
    }


async def test_answers_are_recorded_at_the_discount_and_the_rest_runs_live(
    broker: Broker, redis: Redis, config: AnygateConfig
) -> None:
    provider = FakeProvider()
    provider.answer_every = 2
    ids = await park(broker, 10)
    collector = Collector(config, broker, clients=provider.client)
    await tick_until_idle(collector)
    assert [sorted(batch) for batch in provider.sent] == [sorted(ids)]
    found = await statuses(broker, ids)
    assert len(found["succeeded/provider_batch"]) == 5
    assert len(found["queued/live"]) == 5
    for job_id in found["succeeded/provider_batch"]:
        record = await broker.get("acme", job_id)
        assert record is not None
        # 1,000 tokens each way at 0.15 and 0.6 per million: 0.00075 list, half charged
        assert record.cost_usd == pytest.approx(0.000375)
    assert await exact_counts(broker, redis) == {
        "queued": 5,
        "inflight": 0,
        "tqueued": 5,
        "tinflight": 0,
    }
    assert await broker.provider_batches.active("openai") == []


async def test_a_batch_the_provider_refuses_sends_its_jobs_live(
    broker: Broker, redis: Redis, config: AnygateConfig
) -> None:
    provider = FakeProvider()
    provider.refuse_submit = True
    ids = await park(broker, 4)
    await tick_until_idle(Collector(config, broker, clients=provider.client))
    assert await statuses(broker, ids) == {"queued/live": ids}
    assert await exact_counts(broker, redis) == {
        "queued": 4,
        "inflight": 0,
        "tqueued": 4,
        "tinflight": 0,
    }
    claimed = await broker.claim("openai", "w1", 10)
    assert sorted(j.id for j in claimed) == sorted(ids)
    assert all(j.attempt == 1 for j in claimed)


async def test_jobs_taken_by_a_control_process_that_died_before_sending_go_live(
    broker: Broker, config: AnygateConfig
) -> None:
    ids = await park(broker, 3)
    store = broker.provider_batches
    taken = await store.take("openai", QUEUE, "pb_dead", max_jobs=10, min_cutoff_ms=0)
    assert len(taken) == 3  # ... and the process that took them died here
    provider = FakeProvider()
    collector = Collector(config, broker, clients=provider.client)
    await collector.tick()
    assert (await statuses(broker, ids)).keys() == {"running/provider_batch"}, "not yet"
    await asyncio.sleep(0.25)  # submit_wait_s
    await collector.tick()
    assert await statuses(broker, ids) == {"queued/live": ids}
    assert provider.sent == []
    assert await store.active("openai") == []


async def test_a_deployment_that_stops_taking_batches_sends_its_parked_jobs_live(
    broker: Broker, redis_server: EmbeddedRedis, namespace: str
) -> None:
    ids = await park(broker, 3)
    later = make_config(redis_server, namespace, batch_api=False)
    provider = FakeProvider()
    await Collector(later, broker, clients=provider.client).tick()
    assert await statuses(broker, ids) == {"queued/live": ids}
    assert provider.sent == []


async def test_a_line_the_provider_cannot_carry_goes_live_and_the_rest_is_sent(
    broker: Broker, config: AnygateConfig
) -> None:
    ids = await park(broker, 3)
    provider = FakeProvider()
    provider.unfit_ids = {ids[1]}
    await tick_until_idle(Collector(config, broker, clients=provider.client))
    assert sorted(provider.sent[0]) == sorted([ids[0], ids[2]])
    found = await statuses(broker, ids)
    assert found["queued/live"] == [ids[1]]
    assert sorted(found["succeeded/provider_batch"]) == sorted([ids[0], ids[2]])


async def test_a_batch_past_its_cutoff_is_cancelled_and_what_it_ran_stands(
    broker: Broker, config: AnygateConfig
) -> None:
    provider = FakeProvider()
    provider.ended = RemoteState.RUNNING
    provider.answer_every = 3
    soon = int(time.time() * 1000) + 400  # far enough for a batch (two polls), not for more
    ids = await park(broker, 6, cutoff_ms=soon)
    collector = Collector(config, broker, clients=provider.client)
    await collector.tick()  # sees the queue waiting: collect_s counts from here
    await asyncio.sleep(0.02)
    await collector.tick()
    assert len(provider.sent) == 1
    await asyncio.sleep(0.5)
    await tick_until_idle(collector)
    assert provider.cancels == 1
    found = await statuses(broker, ids)
    assert len(found["succeeded/provider_batch"]) == 2
    assert len(found["queued/live"]) == 4


async def test_two_control_processes_send_each_job_once(
    broker: Broker, config: AnygateConfig
) -> None:
    provider = FakeProvider()
    ids = await park(broker, 50)
    one = Collector(config, broker, clients=provider.client)
    two = Collector(config, broker, clients=provider.client)
    for _ in range(5):
        await asyncio.gather(one.tick(), two.tick())
        await asyncio.sleep(0.03)
    sent = [job_id for batch in provider.sent for job_id in batch]
    assert sorted(sent) == sorted(ids), "each job sent once"
    assert await statuses(broker, ids) == {"succeeded/provider_batch": ids}


async def test_a_tick_that_dies_while_recording_answers_is_repeated_without_doubles(
    broker: Broker, redis: Redis, config: AnygateConfig
) -> None:
    provider = FakeProvider()
    provider.answer_every = 2
    ids = await park(broker, 6)
    collector = Collector(config, broker, clients=provider.client)
    store: Any = broker.provider_batches
    release = store.release
    calls = 0

    async def dies_once(*args: Any, **kwargs: Any) -> list[bool]:
        nonlocal calls
        calls += 1
        if calls == 1 and kwargs.get("batch_id"):
            raise ConnectionError("the control process died here")
        result: list[bool] = await release(*args, **kwargs)
        return result

    store.release = dies_once
    with pytest.raises(ConnectionError):
        await tick_until_idle(collector)
    await tick_until_idle(collector)
    found = await statuses(broker, ids)
    assert len(found["succeeded/provider_batch"]) == 3
    assert len(found["queued/live"]) == 3
    assert await exact_counts(broker, redis) == {
        "queued": 3,
        "inflight": 0,
        "tqueued": 3,
        "tinflight": 0,
    }
    day = time.strftime("%Y%m%d", time.gmtime())
    day_usage = await redis.hgetall(pool_keys(broker).prefix + f"usage:acme:{day}")
    assert int(day_usage["requests"]) == 3, "each answer counted once"


async def test_a_paused_pool_sends_no_batch_until_it_resumes(
    broker: Broker, redis: Redis, config: AnygateConfig
) -> None:
    provider = FakeProvider()
    ids = await park(broker, 3)
    collector = Collector(config, broker, clients=provider.client)
    await redis.set(broker.keys.paused("openai"), "operator")
    await tick_until_idle(collector)
    assert provider.sent == [], "a paused pool's workers claim nothing, nor does the collector"
    assert (await statuses(broker, ids)).keys() == {"queued/provider_batch"}
    await redis.delete(broker.keys.paused("openai"))
    await tick_until_idle(collector)
    assert await statuses(broker, ids) == {"succeeded/provider_batch": ids}
