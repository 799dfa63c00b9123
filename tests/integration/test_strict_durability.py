"""``redis.durability: strict``: processes refuse a server that would not keep its promise,
``/readyz`` says which promise holds, and results relayed from pub/sub wait for the barrier."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml

from anygate.broker import create_redis
from anygate.broker.durability import DurabilityBarrier
from anygate.config import RedisConfig
from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.configs import config_tree
from tests.support.mock import MockControl
from tests.support.processes import ManagedProcess, free_port
from tests.support.stack import Stack, running_stack

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "durable?"}]}


@pytest.fixture(scope="module")
def fsync_always(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A server of its own that fsyncs before every reply, as strict mode needs."""
    with EmbeddedRedis(tmp_path_factory.mktemp("always"), appendfsync="always") as server:
        yield server


def _strict(url: str, namespace: str, **redis_settings: Any) -> dict[str, Any]:
    tree = config_tree(url, namespace)
    tree["redis"].update(durability="strict", **redis_settings)
    return tree


def _write(tmp_path: Path, tree: dict[str, Any]) -> dict[str, str]:
    path = tmp_path / "strict.yaml"
    path.write_text(yaml.safe_dump(tree), encoding="utf-8")
    return {"ANYGATE_CONFIG": str(path)}


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "anygate.ops", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("command", [["api"], ["worker", "--pool", "openai"], ["control"]])
def test_every_process_refuses_a_server_that_fsyncs_once_a_second(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, command: list[str]
) -> None:
    """The session's server runs appendfsync everysec: nothing strict may start on it, and the
    refusal says what to set."""
    done = _run(command, _write(tmp_path, _strict(redis_server.url, namespace)))
    assert done.returncode != 0
    assert "appendfsync everysec" in done.stderr
    assert "appendfsync always" in done.stderr
    assert "Traceback" not in done.stderr, done.stderr


@pytest.fixture
def no_config_user(fsync_always: EmbeddedRedis) -> Iterator[str]:
    """A Redis user that may do anything but CONFIG, as on managed Redis; its URL."""
    admin = redis.Redis.from_url(fsync_always.url)
    admin.acl_setuser(
        "noconfig",
        enabled=True,
        passwords=["+pw"],
        keys=["*"],
        channels=["*"],
        commands=["+@all", "-config"],
    )
    try:
        yield f"redis://noconfig:pw@127.0.0.1:{fsync_always.port}/0"
    finally:
        admin.acl_deluser("noconfig")
        admin.close()


def test_strict_mode_needs_the_operators_word_where_config_is_denied(
    tmp_path: Path, no_config_user: str, namespace: str, mock: MockControl
) -> None:
    refused = _run(["api"], _write(tmp_path, _strict(no_config_user, namespace)))
    assert refused.returncode != 0
    assert "refuses CONFIG GET" in refused.stderr
    assert "redis.assume_appendfsync_always: true" in refused.stderr

    env = _write(tmp_path, _strict(no_config_user, namespace, assume_appendfsync_always=True))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "anygate.ops", "api", "--port", str(port)]
    with ManagedProcess.start(args, env=env, ready_url=f"{url}/readyz") as api:
        ready = httpx.get(f"{url}/readyz").json()
        assert ready["durability"].startswith("strict (unverified")
        assert "durability unverified" in api.log_tail()


async def test_readyz_says_strict_and_goes_unready_when_fsync_is_relaxed(
    tmp_path: Path, fsync_always: EmbeddedRedis, namespace: str
) -> None:
    """A server reconfigured under a running gateway takes it out of rotation, saying why."""
    stack = Stack(tmp_path, _strict(fsync_always.url, namespace))
    admin = redis.Redis.from_url(fsync_always.url)
    try:
        stack.start_api()
        async with httpx.AsyncClient(base_url=stack.url) as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 200
            assert ready.json()["durability"] == "strict (appendonly yes, appendfsync always)"
            admin.config_set("appendfsync", "everysec")
            try:
                relaxed = await client.get("/readyz")
            finally:
                admin.config_set("appendfsync", "always")
            assert relaxed.status_code == 503
            assert "appendfsync everysec" in relaxed.json()["problem"]
            assert "retry-after" in relaxed.headers
            assert (await client.get("/readyz")).status_code == 200
    finally:
        stack.stop()
        admin.close()


def _barriers(server: EmbeddedRedis) -> int:
    """The barrier's round trips Redis has served (``ECHO``s: anygate sends them for nothing
    else)."""
    with redis.Redis.from_url(server.url) as client:
        stats: dict[str, Any] = client.info("commandstats")
        return int(stats.get("cmdstat_echo", {}).get("calls", 0))


async def _answers_and_barriers(
    tmp_path: Path, server: EmbeddedRedis, namespace: str, mock: MockControl, durability: str
) -> int:
    """3 synchronous answers, 2 streams and 1 SSE stream to their end; the barriers sent."""
    tree = config_tree(server.url, namespace, mock_root=mock.url)
    tree["redis"]["durability"] = durability
    with running_stack(tmp_path / durability, tree, ["openai"]) as stack:
        async with stack.client() as client:
            before = _barriers(server)
            for _ in range(3):
                answer = await client.post("/v1/chat/completions", json=CHAT)
                assert answer.status_code == 200, answer.text
            for _ in range(2):
                streamed = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
                assert streamed.text.rstrip().endswith("data: [DONE]")
            mock.settings(latency_ms=300)  # the SSE reader sees the end live, not in the log
            job = await client.post(
                "/v1/jobs", json={"endpoint": "/v1/chat/completions", "body": CHAT}
            )
            async with client.stream("GET", f"/v1/jobs/{job.json()['id']}/events") as events:
                body = "".join([line async for line in events.aiter_lines()])
            assert "event: completed" in body
            mock.settings(latency_ms=0)
            return _barriers(server) - before


async def test_results_read_from_pub_sub_wait_for_the_barrier_in_strict_mode_only(
    tmp_path: Path, fsync_always: EmbeddedRedis, namespace: str, mock: MockControl
) -> None:
    """A synchronous answer, a stream's end and an SSE stream's terminal event each follow one
    round trip sent after the event was read (its reply leaves Redis only after the fsync that
    covers the job's end). Standard mode sends none."""
    (tmp_path / "standard").mkdir()
    (tmp_path / "strict").mkdir()
    standard = await _answers_and_barriers(tmp_path, fsync_always, namespace, mock, "standard")
    strict = await _answers_and_barriers(tmp_path, fsync_always, f"{namespace}s", mock, "strict")
    assert standard == 0, f"{standard} barriers in standard mode"
    assert strict == 6, f"{strict} barriers in strict mode for 6 results"


async def test_the_barrier_is_one_ping_shared_by_the_callers_of_a_loop_turn(
    fsync_always: EmbeddedRedis,
) -> None:
    """Fifty results ending at once cost one round trip; a caller that comes after it was sent
    needs one of its own (the one in flight may predate what it read)."""
    client = create_redis(RedisConfig(url=fsync_always.url))
    try:
        before = _barriers(fsync_always)
        await DurabilityBarrier(client, "standard")()
        assert _barriers(fsync_always) == before
        barrier = DurabilityBarrier(client, "strict")
        await asyncio.gather(*(barrier() for _ in range(50)))
        assert _barriers(fsync_always) - before == 1
        await barrier()
        await barrier()
        assert _barriers(fsync_always) - before == 3
    finally:
        await client.aclose()


async def test_a_failed_barrier_reaches_every_caller(tmp_path: Path) -> None:
    """With Redis gone nothing can be confirmed: each caller hears so (an SSE stream then ends
    before its last event, a synchronous call answers 503 naming its job)."""
    client = create_redis(RedisConfig(url=f"redis://127.0.0.1:{free_port()}/0"))
    barrier = DurabilityBarrier(client, "strict")
    try:
        results = await asyncio.gather(*(barrier() for _ in range(3)), return_exceptions=True)
        assert all(isinstance(r, redis.exceptions.ConnectionError) for r in results), results
    finally:
        await client.aclose()


def test_a_strict_process_waits_for_redis_then_checks_it(tmp_path: Path, namespace: str) -> None:
    """Redis not up yet (or loading its AOF) is transient: the process says so and waits,
    then starts once the server answers and turns out to fsync every write."""
    redis_port, api_port = free_port(), free_port()
    env = _write(tmp_path, _strict(f"redis://127.0.0.1:{redis_port}/0", namespace))
    args = [sys.executable, "-m", "anygate.ops", "api", "--port", str(api_port)]
    with ManagedProcess.start(args, env=env) as api:
        deadline = time.monotonic() + 15
        while "waiting for Redis to check its durability" not in api.log_tail():
            assert api.running, api.log_tail()
            assert time.monotonic() < deadline, api.log_tail()
            time.sleep(0.05)
        with EmbeddedRedis(tmp_path / "late", port=redis_port, appendfsync="always"):
            api.wait_ready(f"http://127.0.0.1:{api_port}/readyz", timeout=20)


def test_a_wrong_password_is_refused_at_once(
    tmp_path: Path, no_config_user: str, namespace: str
) -> None:
    """Unlike a server not up yet, bad credentials do not fix themselves: a clear refusal."""
    wrong = no_config_user.replace(":pw@", ":wrong@")
    done = _run(["api"], _write(tmp_path, _strict(wrong, namespace)))
    assert done.returncode != 0
    assert "cannot check the Redis server's durability" in done.stderr
    assert "Traceback" not in done.stderr, done.stderr


async def test_when_the_end_cannot_be_confirmed_no_client_is_told_it(
    tmp_path: Path, fsync_always: EmbeddedRedis, namespace: str, mock: MockControl
) -> None:
    """The barrier fails (here: the Redis user may not ECHO): a synchronous call answers 503
    naming its job, a stream ends with the error of an interrupted stream instead of
    ``[DONE]``, an SSE stream ends before its last event; a read then shows the result."""
    admin = redis.Redis.from_url(fsync_always.url)
    admin.acl_setuser(
        "noecho",
        enabled=True,
        passwords=["+pw"],
        keys=["*"],
        channels=["*"],
        commands=["+@all", "-config", "-echo"],
    )
    url = f"redis://noecho:pw@127.0.0.1:{fsync_always.port}/0"
    tree = config_tree(url, namespace, mock_root=mock.url)
    tree["redis"].update(durability="strict", assume_appendfsync_always=True)
    try:
        with running_stack(tmp_path, tree, ["openai"]) as stack:
            async with stack.client() as client:
                answer = await client.post("/v1/chat/completions", json=CHAT)
                assert answer.status_code == 503
                job_id = answer.headers["x-anygate-job-id"]
                assert f"/v1/jobs/{job_id}" in answer.json()["error"]["message"]
                assert "retry-after" in answer.headers

                streamed = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
                assert "[DONE]" not in streamed.text
                assert "/v1/jobs/" in streamed.text.splitlines()[-2]

                mock.settings(latency_ms=300)
                job = (
                    await client.post(
                        "/v1/jobs", json={"endpoint": "/v1/chat/completions", "body": CHAT}
                    )
                ).json()
                async with client.stream("GET", f"/v1/jobs/{job['id']}/events") as events:
                    body = "".join([line async for line in events.aiter_lines()])
                assert "event: completed" not in body
                done = (await client.get(f"/v1/jobs/{job['id']}")).json()
                assert done["status"] == "succeeded", "the log and the job hash have it"
                again = await client.get(f"/v1/jobs/{job['id']}/events")
                assert "event: completed" in again.text, "a reconnect reads the end from the log"
    finally:
        admin.acl_deluser("noecho")
        admin.close()
