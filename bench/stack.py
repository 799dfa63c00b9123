"""The processes a benchmark run starts, and the configuration they share.

Every process gets its own session, so its process-group id is its pid, and is stopped by that id
(SIGTERM, then SIGKILL of the group only while the leader is still unreaped, so the id cannot
have been reused). Output goes to a log file per process: the worker logs every aborted job and
that must neither flood the table nor cost terminal I/O inside a measurement.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml

from anygate.api.auth import hash_key
from anygate.broker import KeySpace

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


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.pid, signal.SIGTERM)
            self.popen.wait(timeout=timeout)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)  # the leader is unreaped: the group id is ours
            self.popen.wait(timeout=5)


def start(name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> Proc:
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    return Proc(name, popen, log_path)


def wait_http(url: str, proc: Proc, timeout: float = 30.0) -> None:
    """Poll until ``url`` answers 200; fail early, with the log, when the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.log_tail()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{proc.name} not ready at {url} after {timeout} s:\n{proc.log_tail()}")


def wait_registered(
    redis_url: str, namespace: str, pool: str, proc: Proc, timeout: float = 30.0
) -> None:
    """A worker is ready once it registered in the pool's worker hash."""
    client = redis.Redis.from_url(redis_url)
    key = KeySpace(namespace).workers(pool)
    deadline = time.monotonic() + timeout
    try:
        while not client.hlen(key):
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{proc.name} did not register in {timeout} s:\n{proc.log_tail()}"
                )
            time.sleep(0.05)
    finally:
        client.close()


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
        write_config(self.config_path, tree)
        argv = [*ANYGATE, "api", "--port", str(port)]
        proc = self._add(start("api", argv, child_env(self.config_path), self.work))
        wait_http(f"{self.api_url}/readyz", proc)
        return proc

    def start_worker(self, pool: str, concurrency: int) -> Proc:
        argv = [*ANYGATE, "worker", "--pool", pool, "--concurrency", str(concurrency),
                "--shutdown-grace", "5"]  # fmt: skip
        proc = self._add(
            start(f"worker-{pool}-{len(self.procs)}", argv, child_env(self.config_path), self.work)
        )
        wait_registered(self.redis_url, self.namespace, pool, proc)
        return proc

    def start_control(self) -> Proc:
        """``anygate control``: ready once its first batch tick has run."""
        argv = [*ANYGATE, "control"]
        proc = self._add(start("control", argv, child_env(self.config_path), self.work))
        client = redis.Redis.from_url(self.redis_url)
        deadline = time.monotonic() + 30
        try:
            while not client.exists(f"{KeySpace(self.namespace).prefix}control:ticked"):
                if not proc.alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"control did not start:\n{proc.log_tail()}")
                time.sleep(0.05)
        finally:
            client.close()
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self.procs:
            self.procs.remove(proc)

    def close(self) -> None:
        while self.procs:
            self.procs.pop().stop()

    def _add(self, proc: Proc) -> Proc:
        self.procs.append(proc)
        return proc
