"""The sharded broker on a real 3-master Redis Cluster that the test starts (docs/scaling.md):
pools on shards served by different nodes, jobs on more than one node, and a fallback across
shards whose hand-off is cut short by a process killed between its two steps."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from openai import OpenAI
from redis.crc import key_slot

from anygate.broker import (
    Broker,
    IdempotencyConflictError,
    KeySpace,
    NewJob,
    create_redis,
    new_job_id,
)
from anygate.config import Priority, parse_config
from anygate.ops.redis_cluster import LocalRedisCluster, slot_ranges
from tests.support.configs import FAILING_MODEL, TENANT_KEYS, config_tree
from tests.support.eventually import eventually
from tests.support.mock import MockControl
from tests.support.stack import Stack

NAMESPACE = "cl"
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    with LocalRedisCluster(tmp_path_factory.mktemp("cluster"), masters=3) as c:
        yield c


def shard_on_node(node: int, masters: int = 3, avoid: str = "") -> str:
    """A shard name whose hash tag (``{cl:<name>}``) falls in the slots of master ``node``."""
    low, high = slot_ranges(masters)[node]
    for i in range(10_000):
        name = f"s{node}x{i}"
        slot = key_slot(f"{{{NAMESPACE}:{name}}}".encode())
        if low <= slot <= high and name != avoid:
            return name
    raise AssertionError("no shard name for that node")


def cluster_tree(cluster: LocalRedisCluster, mock_url: str, namespace: str) -> dict[str, Any]:
    tree = config_tree(cluster.url, namespace, mock_root=mock_url)
    tree["redis"]["mode"] = "cluster"
    # the openai pool on master 1, the gemini pool on master 2 (the home shard is wherever
    # the namespace's own tag hashes)
    tree["pools"] = {
        "openai": {"shard": shard_on_node(1)},
        "gemini": {"shard": shard_on_node(2)},
    }
    return tree


def node_keys(cluster: LocalRedisCluster, pattern: str) -> list[list[str]]:
    """The keys matching ``pattern`` on each master, in node order."""
    found = []
    for node in cluster.nodes:
        with redis.Redis(port=node.port, decode_responses=True) as r:
            found.append(list(r.scan_iter(match=pattern, count=1000)))
    return found


@pytest.fixture
def sharded_stack(tmp_path: Path, cluster: LocalRedisCluster, mock: MockControl) -> Iterator[Stack]:
    stack = Stack(tmp_path, cluster_tree(cluster, mock.url, NAMESPACE))
    try:
        stack.start_api()
        yield stack
    except BaseException:
        stack.stop()
        raise
    stack.stop()
    stack.check_logs()


def test_pools_on_two_nodes_serve_both_surfaces(
    sharded_stack: Stack, cluster: LocalRedisCluster
) -> None:
    sharded_stack.start_worker(pool="openai")
    sharded_stack.start_worker(pool="gemini")
    sharded_stack.start_control()
    with OpenAI(base_url=f"{sharded_stack.url}/v1", api_key=TENANT_KEYS["acme"]) as client:
        for model in ("gpt-4o-mini", "gemini-2.5-flash"):
            for i in range(3):
                answer = client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": f"hello {i}"}]
                )
                assert answer.choices[0].message.content
    headers = {"authorization": f"Bearer {TENANT_KEYS['acme']}"}
    listed = httpx.get(f"{sharded_stack.url}/v1/jobs?limit=10", headers=headers).json()
    ids = [j["id"] for j in listed["data"]]
    assert len(ids) == 6, "one tenant's jobs listed across both shards, newest first"
    assert {j["model"] for j in listed["data"]} == {"gpt-4o-mini", "gemini-2.5-flash"}
    per_node = node_keys(cluster, f"ag:{{{NAMESPACE}:*}}:job:*")
    assert [len(keys) for keys in per_node][1:] == [3, 3], per_node
    for job_id in ids:  # each id names its shard, and each record is where its id says
        job = httpx.get(f"{sharded_stack.url}/v1/jobs/{job_id}", headers=headers).json()
        assert job["status"] == "succeeded"
    usage = httpx.get(f"{sharded_stack.url}/v1/usage", headers=headers).json()
    assert sum(row["requests"] for row in usage["data"]) == 6, "usage summed over the shards"


def test_fallback_to_a_pool_on_another_shard(sharded_stack: Stack, mock: MockControl) -> None:
    """The openai deployment fails, the route falls back to gemini, on another shard: the job
    is handed off and answered there, its history and events whole."""
    sharded_stack.start_worker(pool="openai")
    sharded_stack.start_worker(pool="gemini")
    mock.fault(fault="500", model=FAILING_MODEL)
    with OpenAI(
        base_url=f"{sharded_stack.url}/v1", api_key=TENANT_KEYS["acme"], max_retries=0
    ) as c:
        raw = c.chat.completions.with_raw_response.create(
            model="resilient", messages=[{"role": "user", "content": "are you there?"}]
        )
    assert raw.parse().choices[0].message.content
    job_id = raw.headers["x-anygate-job-id"]
    headers = {"authorization": f"Bearer {TENANT_KEYS['acme']}"}
    job = httpx.get(f"{sharded_stack.url}/v1/jobs/{job_id}", headers=headers).json()
    assert job["status"] == "succeeded"
    assert job["provider"] == "gemini"
    assert [h["outcome"] for h in job["attempt_history"]] == ["retry", "retry", "fall_back"]
    events = httpx.get(f"{sharded_stack.url}/v1/jobs/{job_id}/events", headers=headers)
    types = [
        line.removeprefix("event: ")
        for line in events.text.splitlines()
        if line.startswith("event: ")
    ]
    assert types.count("started") == 4, types
    assert types[-1] == "completed", types


CRASHING_WORKER = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from anygate.broker import Broker, create_redis
    from anygate.broker.handoff import HandOff
    from anygate.config import load_config

    STEP = sys.argv[1]  # 'after-1': killed between the steps; 'after-2': before the parcel goes

    async def main() -> None:
        config = load_config()
        redis = create_redis(config.redis)
        broker = Broker(redis, config)
        real_deliver = HandOff.deliver

        async def crash(self, job_id, source, target, pool, parcel):
            if STEP == "after-2":
                await broker.handoff._scripts.adopt.call(  # step 2, without dropping the parcel
                    __import__("anygate.broker.script_calls.handoff", fromlist=["x"]).AdoptKeys.of(
                        broker.keys.on(target), job_id, pool),
                    __import__("anygate.broker.script_calls.handoff", fromlist=["x"]).AdoptArgs(
                        broker.keys.on(target).prefix, job_id, pool, parcel),
                )
            print("crashing", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

        HandOff.deliver = crash
        (job,) = await broker.claim("openai", "crashing-worker", 1)
        await broker.requeue(
            job, "openai", delay_s=0, reason="upstream_error", refund_attempt=False,
            to_pool="gemini", to_step=1,
        )

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("step", ["after-1", "after-2"])
async def test_a_hand_off_cut_short_by_a_kill_ends_with_one_result(
    sharded_stack: Stack, cluster: LocalRedisCluster, mock: MockControl, step: str
) -> None:
    """A worker killed (SIGKILL) between the two steps of a hand-off, or between step 2 and
    dropping the parcel: the sweep finishes it, and the job runs once on the target shard."""
    headers = {"authorization": f"Bearer {TENANT_KEYS['acme']}"}
    submitted = httpx.post(
        f"{sharded_stack.url}/v1/jobs",
        headers=headers,
        json={
            "endpoint": "/v1/chat/completions",
            "body": {"model": "resilient", "messages": [{"role": "user", "content": "hi"}]},
        },
    )
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_WORKER, step],
        env={**os.environ, **sharded_stack.env},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert crashed.returncode == -9, crashed.stderr.decode()[-2000:]
    keys = KeySpace.of(parse_config(sharded_stack.tree))
    source, target = keys.for_pool("openai"), keys.for_pool("gemini")
    with redis.RedisCluster.from_url(cluster.url, decode_responses=True) as r:
        assert r.zcard(source.handoffs) == 1, "the parcel is left listed"
        assert r.hget(source.job(job_id), "status") == "moved"
        assert r.exists(target.job(job_id)) == (1 if step == "after-2" else 0)
    # a worker of the target pool, and the control plane whose reclaim pass sweeps
    sharded_stack.start_worker(pool="gemini")
    sharded_stack.start_control()
    job = await eventually(
        lambda: _finished(sharded_stack.url, headers, job_id), timeout=30, what="the job's end"
    )
    assert job["status"] == "succeeded"
    assert job["provider"] == "gemini"
    with redis.RedisCluster.from_url(cluster.url, decode_responses=True) as r:
        await eventually(  # the sweep waits 5 s before it takes a parcel over
            lambda: r.zcard(source.handoffs) == 0, timeout=30, what="the parcel swept"
        )
        assert not r.exists(source.parcel(job_id))
        assert int(r.hget(target.stats("gemini"), "queued") or 0) == 0
        assert int(r.hget(source.stats("openai"), "inflight") or 0) == 0
        assert int(r.hget(target.tenants_queued, "acme") or 0) == 0
        assert int(r.hget(source.tenants_in_flight, "acme") or 0) == 0
        assert r.llen(target.redeliver("gemini")) == 0, "not queued a second time"
    upstream = [r["path"] for r in mock.requests()]
    assert sum("GenerateContent" in p for p in upstream) == 1, ("run once, not twice", upstream)
    assert sum("chat/completions" in p for p in upstream) == 0


def _finished(url: str, headers: dict[str, str], job_id: str) -> dict[str, Any] | None:
    job: dict[str, Any] = httpx.get(f"{url}/v1/jobs/{job_id}", headers=headers).json()
    return job if job.get("status") in ("succeeded", "failed") else None


async def test_an_idempotency_key_names_one_job_across_shards(
    cluster: LocalRedisCluster, mock: MockControl
) -> None:
    """A route whose deployments span pools on two shards may place a repeat on the other
    shard: the key still names the first job, and a different request under it is refused."""
    config = parse_config(cluster_tree(cluster, mock.url, f"idem{os.getpid()}"))
    client = create_redis(config.redis)
    broker = Broker(client, config)
    try:
        body = b'{"model":"m","messages":[{"role":"user","content":"once"}]}'

        def job(pool: str, payload: bytes = body) -> NewJob:
            return NewJob(
                "acme",
                pool,
                CHAT,
                "gpt-4o-mini",
                payload,
                Priority.STANDARD,
                idempotency_key="key-1",
            )

        first = await broker.enqueue(job("openai"), new_job_id(config.shard_of("openai")))
        again = await broker.enqueue(job("gemini"), new_job_id(config.shard_of("gemini")))
        assert again.job_id == first.job_id
        assert not again.created
        with pytest.raises(IdempotencyConflictError):
            await broker.enqueue(
                job("gemini", body.replace(b"once", b"twice")),
                new_job_id(config.shard_of("gemini")),
            )
        stats = await broker.pool_stats("gemini")
        assert int(stats.get("queued", 0)) == 0, "nothing queued on the second shard"
    finally:
        await client.aclose()
