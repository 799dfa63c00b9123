"""What ``anygate dev`` takes for each part being ready (``anygate.ops.dev_ready``): a worker's
heartbeat from this run (not a previous run's entry), control's tick, and the API process we
started being the one that listens."""

from __future__ import annotations

import socket
import sys
import textwrap
from pathlib import Path

import fakeredis

from anygate.broker.keys import KeySpace
from anygate.broker.worker_registry import RegistryValue, encode_registry_value
from anygate.ops.dev_ready import (
    all_of,
    control_probe,
    forget_control_tick,
    listens_probe,
    redis_now_ms,
    worker_probe,
)
from anygate.ops.processes import free_port, start, wait_tcp

KEYS = KeySpace("main")


def _client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(decode_responses=True)


def _beat(client: fakeredis.FakeRedis, pool: str, worker: str, at_ms: int) -> None:
    client.hset(KEYS.workers(pool), worker, encode_registry_value(RegistryValue(at_ms, 8, 0)))


def test_a_worker_counts_once_it_heartbeats_after_the_start() -> None:
    client = _client()
    since = redis_now_ms(client)
    probe = worker_probe(client, KEYS, "openai", since)
    assert probe() == "not registered yet"
    _beat(client, "openai", "openai-old", since - 5_000)  # a previous run's entry
    assert probe() == "no heartbeat from this run yet"
    client.hset(KEYS.workers("openai"), "openai-odd", "not a registry value")
    assert probe() == "no heartbeat from this run yet"
    _beat(client, "gemini", "gemini-new", since + 10)
    assert probe() is not None, "another pool's worker does not count"
    _beat(client, "openai", "openai-new", since + 10)
    assert probe() is None


def test_control_counts_once_it_ticked_after_the_old_tick_was_forgotten() -> None:
    client = _client()
    client.set(KEYS.control_ticked, "1", ex=60)  # left by a previous run
    forget_control_tick(client, KEYS)
    probe = control_probe(client, KEYS)
    assert probe() == "no tick yet"
    client.set(KEYS.control_ticked, "1", ex=60)
    assert probe() is None


def test_all_of_answers_with_the_first_part_not_up() -> None:
    assert all_of(lambda: None, lambda: "b not yet", lambda: "c not yet")() == "b not yet"
    assert all_of(lambda: None, lambda: None)() is None


def test_only_the_child_we_started_listening_counts(tmp_path: Path) -> None:
    port = free_port()
    server = f"""
        import socket, time
        s = socket.socket(); s.bind(("127.0.0.1", {port})); s.listen(); time.sleep(30)
    """
    sleeper = start(
        "sleeper",
        [sys.executable, "-c", "import time; time.sleep(30)"],
        log_path=tmp_path / "sleeper.log",
    )
    listener = start(
        "listener", [sys.executable, "-c", textwrap.dedent(server)], log_path=tmp_path / "l.log"
    )
    try:
        wait_tcp("127.0.0.1", port, watch=[listener], timeout=10)
        assert listens_probe(listener, port)() is None
        assert listens_probe(sleeper, port)() == f"sleeper does not listen on port {port}"
        with socket.socket() as other:  # a port someone else holds
            other.bind(("127.0.0.1", 0))
            other.listen()
            assert listens_probe(listener, other.getsockname()[1])() is not None
    finally:
        listener.stop()
        sleeper.stop()
