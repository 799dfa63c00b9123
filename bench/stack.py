"""The processes a benchmark run starts, and the configuration they share.

Every process is started, awaited and stopped by ``anygate.ops.processes`` (its own session
and process group, stopped by that id: SIGTERM, then SIGKILL while the leader is unreaped).
Output goes to a log file per process: the worker logs every aborted job and that must neither
flood the table nor cost terminal I/O inside a measurement.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import yaml

from anygate.api.auth import hash_key
from anygate.broker import KeySpace
from anygate.ops.processes import Child, Probe, wait_until
from anygate.ops.processes import start as start_child
from anygate.ops.processes import wait_http as wait_http_up

KEY = "sk-bench-0123456789"
TENANT = "bench"
POOL = "bench"
"""Served by the real worker; its provider is the mock."""
SINK_POOL = "sink"
"""No worker serves it: `/v1/jobs` submits pile up there instead of loading the worker."""
WIDE_POOL = "wide"
"""Served only by the `--concurrency 1000` worker of the RSS scenario."""
MODEL, SINK_MODEL, WIDE_MODEL = "bench-model", "sink-model", "wide-model"
ANYGATE = [sys.executable, "-m", "anygate.ops"]


def config_tree(
    redis_url: str,
    namespace: str,
    mock_v1: str = "http://127.0.0.1:9/v1",
    durability: str = "standard",
) -> dict[str, Any]:
    """One config for API and workers; the sink provider points at the discard port on purpose."""
    provider = {"kind": "openai", "base_url": mock_v1, "api_key": "env:BENCH_MOCK_KEY"}
    return {
        "redis": {"url": redis_url, "namespace": namespace, "durability": durability},
        "providers": {
            POOL: provider,
            WIDE_POOL: provider,
            SINK_POOL: {**provider, "base_url": "http://127.0.0.1:9/v1"},
        },
        "models": {
            name: {"deployments": [{"provider": pool, "model": "mock-model"}]}
            for name, pool in ((MODEL, POOL), (SINK_MODEL, SINK_POOL), (WIDE_MODEL, WIDE_POOL))
        },
        "tenants": [{"id": TENANT, "api_key_sha256": [hash_key(KEY)]}],
    }


def write_config(path: Path, tree: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(tree))
    return path


def child_env(config_path: Path | None = None) -> dict[str, str]:
    """A minimal environment: no stray ANYGATE__* override from the caller's shell leaks in."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "BENCH_MOCK_KEY": "mock-key"}
    if config_path is not None:
        env["ANYGATE_CONFIG"] = str(config_path)
    return env


Proc = Child
"""A benchmark process: a child of ``anygate.ops.processes``, its log in the run's work dir."""


def start(name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> Proc:
    return start_child(name, argv, env=env, log_path=log_dir / f"{name}.log")


def wait_http(url: str, proc: Proc, timeout: float = 30.0) -> None:
    """Poll until ``url`` answers 200; fail early, with the log, when the process died."""
    wait_http_up(url, watch=[proc], timeout=timeout, what=f"{proc.name} at {url}")


def _redis_probe(redis_url: str, check: Callable[[redis.Redis], object]) -> Probe:
    def probe() -> str | None:
        client = redis.Redis.from_url(redis_url)
        try:
            return None if check(client) else "not yet"
        finally:
            client.close()

    return probe


def wait_registered(
    redis_url: str, namespace: str, pool: str, proc: Proc, timeout: float = 30.0
) -> None:
    """A worker is ready once it registered in the pool's worker hash."""
    key = KeySpace(namespace).workers(pool)
    probe = _redis_probe(redis_url, lambda client: client.hlen(key))
    wait_until(probe, what=f"{proc.name} registered in {key}", watch=[proc], timeout=timeout)


def rss_mib(pid: int) -> float:
    """Resident set size (VmRSS) of one process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class Stack:
    """Mock provider, API and workers against one Redis; ``close`` stops them newest first."""

    redis_url: str
    namespace: str
    work: Path
    mock_port: int = 0
    api_port: int = 0
    procs: list[Proc] = field(default_factory=list)
    durability: str = "standard"
    """``redis.durability`` of every process (``strict`` needs a Redis with appendfsync always)."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Top-level config blocks laid over ``config_tree``'s (e.g. ``logging``), for every process."""
    env: dict[str, str] = field(default_factory=dict)
    """Added to the API's and workers' environments (e.g. ``OTEL_*`` variables)."""
    label: str = ""
    """Appended to process and log file names when several stacks share one work dir."""

    @property
    def mock_url(self) -> str:
        return f"http://127.0.0.1:{self.mock_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def config_path(self) -> Path:
        return self.work / f"{self.namespace}.yaml"

    def start_mock(self, port: int, *extra: str) -> Proc:
        self.mock_port = port
        argv = [*ANYGATE, "mock-provider", "--port", str(port), "--chunk-count", "20", *extra]
        proc = self._add(start("mock", argv, child_env(), self.work))
        wait_http(f"{self.mock_url}/_mock/health", proc)
        return proc

    def start_api(self, port: int) -> Proc:
        self.api_port = port
        tree = config_tree(self.redis_url, self.namespace, f"{self.mock_url}/v1", self.durability)
        write_config(self.config_path, tree | self.settings)
        argv = [*ANYGATE, "api", "--port", str(port)]
        proc = self._add(start(f"api{self._suffix}", argv, self._env(), self.work))
        wait_http(f"{self.api_url}/readyz", proc)
        return proc

    def start_worker(self, pool: str, concurrency: int) -> Proc:
        argv = [
            *ANYGATE,
            "worker",
            "--pool",
            pool,
            "--concurrency",
            str(concurrency),
            "--shutdown-grace",
            "5",
        ]
        name = f"worker-{pool}{self._suffix}-{len(self.procs)}"
        proc = self._add(start(name, argv, self._env(), self.work))
        wait_registered(self.redis_url, self.namespace, pool, proc)
        return proc

    def start_control(self) -> Proc:
        """``anygate control``: ready once its first batch tick has run."""
        argv = [*ANYGATE, "control"]
        proc = self._add(start(f"control{self._suffix}", argv, self._env(), self.work))
        ticked = f"{KeySpace(self.namespace).prefix}control:ticked"
        probe = _redis_probe(self.redis_url, lambda client: client.exists(ticked))
        wait_until(probe, what="control's first batch tick", watch=[proc], timeout=30)
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop(timeout=15.0)
        if proc in self.procs:
            self.procs.remove(proc)

    def close(self) -> None:
        while self.procs:
            self.procs.pop().stop(timeout=15.0)

    @contextlib.contextmanager
    def running(self) -> Iterator[Stack]:
        """Every process stopped at the end; on a failure each one's log tail printed first,
        since the processes and their logs go with the run's temporary folder."""
        try:
            yield self
        except Exception:
            for proc in self.procs:
                print(f"--- {proc.name} log (tail) ---\n{proc.log_tail()}", flush=True)
            raise
        finally:
            self.close()

    @property
    def _suffix(self) -> str:
        return f"-{self.label}" if self.label else ""

    def _env(self) -> dict[str, str]:
        return child_env(self.config_path) | self.env

    def _add(self, proc: Proc) -> Proc:
        self.procs.append(proc)
        return proc
