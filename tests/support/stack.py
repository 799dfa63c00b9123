"""A running gateway for end-to-end tests: API and worker processes against a real Redis.

Processes are started exactly as production starts them (``python -m anygate.ops api|worker``),
with a config file and env; each is stopped by its own pid when the test ends, and what they
logged is checked for errors (``process_logs.py``) when the stack stops.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from anygate.broker import KeySpace
from anygate.config import parse_config
from anygate.ops.processes import wait_until
from tests.support.configs import MOCK_KEY_ENV, TENANT_KEYS, sync_redis
from tests.support.process_logs import PROCESS_LOGS
from tests.support.processes import ManagedProcess, free_port

ANYGATE = [sys.executable, "-m", "anygate.ops"]


def layout_of(tree: dict[str, Any]) -> KeySpace:
    """The key layout of a config tree: its namespace and, on a cluster, its pools' shards
    (read without the rest of the ``redis`` section, which a subclass may rewrite)."""
    redis_section = tree["redis"]
    mode = "cluster" if redis_section.get("mode") == "cluster" else "standalone"
    layout_tree = {**tree, "redis": {"namespace": redis_section["namespace"], "mode": mode}}
    return KeySpace.of(parse_config(layout_tree))


class Stack:
    def __init__(
        self, tmp_path: Path, tree: dict[str, Any], env: Mapping[str, str] | None = None
    ) -> None:
        self.tree = tree
        self.config_path = tmp_path / "anygate.yaml"
        self.config_path.write_text(yaml.safe_dump(tree), encoding="utf-8")
        self.env = {
            "ANYGATE_CONFIG": str(self.config_path),
            MOCK_KEY_ENV: "mock-key",
            **(env or {}),
        }
        self.apis: list[tuple[ManagedProcess, str]] = []
        self.workers: list[ManagedProcess] = []
        self.controls: list[ManagedProcess] = []
        self.worker_pool: dict[int, str] = {}
        # every process ever started here, also those a test killed and took off the lists
        self.started: list[ManagedProcess] = []
        self._redis = sync_redis(tree["redis"]["url"], tree["redis"].get("mode"))
        self._keys = layout_of(tree)

    def start_api(self) -> str:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = ManagedProcess.start(
            [*ANYGATE, "api", "--port", str(port)], env=self.env, ready_url=f"{url}/readyz"
        )
        self.started.append(proc)
        self.apis.append((proc, url))
        return url

    def start_worker(
        self,
        *,
        pool: str = "openai",
        concurrency: int = 8,
        grace: float = 30.0,
        metrics_port: int | None = None,
    ) -> ManagedProcess:
        before = self.registered_workers(pool)
        metrics = ["--metrics-port", str(metrics_port)] if metrics_port is not None else []
        proc = ManagedProcess.start(
            [
                *ANYGATE,
                "worker",
                "--pool",
                pool,
                "--concurrency",
                str(concurrency),
                "--shutdown-grace",
                str(grace),
                *metrics,
            ],
            env=self.env,
        )
        self.started.append(proc)
        wait_until(
            lambda: None if self.registered_workers(pool) > before else "not registered",
            what=f"a worker of pool {pool} in the registry",
            watch=[proc.child],
            timeout=20,
        )
        self.workers.append(proc)
        self.worker_pool[proc.pid] = pool
        return proc

    def start_control(self, *, metrics_port: int | None = None) -> ManagedProcess:
        """``anygate control`` (arq): batches, webhooks, housekeeping. Ready once its first
        batch tick has run (arq runs the cron at start-up)."""
        metrics = ["--metrics-port", str(metrics_port)] if metrics_port is not None else []
        proc = ManagedProcess.start([*ANYGATE, "control", *metrics], env=self.env)
        self.started.append(proc)
        ticked = f"{self._keys.prefix}control:ticked"
        wait_until(
            lambda: None if self._redis.exists(ticked) else "no tick yet",
            what="control's first batch tick",
            watch=[proc.child],
            timeout=20,
        )
        self.controls.append(proc)
        return proc

    def stop_workers(self, pool: str) -> None:
        """SIGTERM every worker of ``pool`` this stack started."""
        for proc in [w for w in self.workers if self.worker_pool[w.pid] == pool]:
            proc.terminate()
            self.workers.remove(proc)

    def registered_workers(self, pool: str = "openai") -> int:
        return int(self._redis.hlen(self._keys.workers(pool)))

    @property
    def url(self) -> str:
        return self.apis[0][1]

    def client(self, tenant: str = "acme", *, api: int = 0) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.apis[api][1],
            headers={"authorization": f"Bearer {TENANT_KEYS[tenant]}"},
            timeout=30,
        )

    def stop(self) -> None:
        for proc in self.controls:
            proc.terminate()
        for proc in self.workers:
            proc.terminate()
        for proc, _url in self.apis:
            proc.terminate()
        self._redis.close()

    def check_logs(self) -> None:
        """Raise ``LogCheckError`` if a process of this stack logged an unexpected error since
        its log was last read (all of it, once the stack has stopped)."""
        __tracebackhide__ = True
        PROCESS_LOGS.check(self.started)


@contextlib.contextmanager
def running_stack(
    tmp_path: Path,
    tree: dict[str, Any],
    worker_pools: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> Iterator[Stack]:
    """An API process plus one worker per named pool (``env`` added to each process's); every
    process stopped at the end and, unless the block failed already, its whole log checked for
    errors."""
    stack = Stack(tmp_path, tree, env)
    try:
        stack.start_api()
        for pool in worker_pools:
            stack.start_worker(pool=pool)
        yield stack
    except BaseException:
        stack.stop()  # the block's own failure comes first; the test's log check still runs
        raise
    stack.stop()
    stack.check_logs()
