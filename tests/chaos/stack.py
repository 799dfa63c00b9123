"""The chaos stack: its own Redis (AOF ``everysec``, a fixed port, so a restart comes back where
the processes expect it), its own mock provider, two API processes, three workers and the control
plane, each started exactly as production starts it (``python -m anygate.ops api|worker|control``).

Every process sits in a named slot. The fault schedule kills a slot's process (SIGKILL to the
process group it leads: only our own pids) and later restarts it on the same port; ``exited``
tells the supervisor which processes died without being killed. Every process ever started is
kept, so its log can be read at the end.

Methods here block (they wait for readiness); async callers run them in a thread.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import yaml

from anygate.ops.embedded_redis import EmbeddedRedis
from tests.chaos.settings import (
    MOCK_CHUNK_DELAY_MS,
    MOCK_CHUNKS,
    MOCK_KEY_ENV,
    MOCK_LATENCY_MS,
    WORKER_CONCURRENCY,
    chaos_tree,
)
from tests.support.processes import ManagedProcess, free_port

ANYGATE = [sys.executable, "-m", "anygate.ops"]
READY_TIMEOUT_S = 30.0
WORKER_POOLS = ("openai", "openai", "gemini")
"""Three workers: two share the OpenAI pool (so one can die while the other serves), one serves
Gemini alone (so its death stops that pool until the lease lapses elsewhere: nowhere)."""


@dataclass
class Slot:
    """One process the stack keeps running, and every process that ever filled the slot."""

    name: str
    args: list[str]
    url: str | None = None
    pool: str | None = None
    proc: ManagedProcess | None = None
    history: list[ManagedProcess] = field(default_factory=list)
    held_down: bool = False
    """Killed on purpose and not restarted yet: the supervisor leaves it alone."""
    worker_id: str = ""
    """A worker's id as it registered (``workers:<pool>``), once started and waited for."""


@dataclass(frozen=True, slots=True)
class Exit:
    """A process that ended without the suite killing it."""

    slot: str
    pid: int
    code: int | None
    at: float
    log_tail: str


class ChaosStack:
    def __init__(self, root: Path, namespace: str = "chaos") -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.namespace = namespace
        self.prefix = f"ag:{{{namespace}}}:"
        self.redis = EmbeddedRedis(root / "redis", port=free_port(), aof=True)
        self.mock_url = f"http://127.0.0.1:{free_port()}"
        self.webhook_secret = "chaos-webhook-secret-0123456789abcdef"
        secret_file = root / "webhook.secret"
        secret_file.write_text(self.webhook_secret, encoding="utf-8")
        self.tree: dict[str, Any] = chaos_tree(
            self.redis.url, namespace, self.mock_url, secret_file
        )
        config_path = root / "anygate.yaml"
        config_path.write_text(yaml.safe_dump(self.tree), encoding="utf-8")
        self.env = {"ANYGATE_CONFIG": str(config_path), MOCK_KEY_ENV: "mock-key"}
        self.slots: dict[str, Slot] = {}
        self._known_workers: set[str] = set()
        mock_port = self.mock_url.rsplit(":", 1)[1]
        self._add(
            Slot(
                "mock",
                [
                    *ANYGATE,
                    "mock-provider",
                    "--port",
                    mock_port,
                    "--chunk-count",
                    str(MOCK_CHUNKS),
                    "--chunk-delay-ms",
                    str(MOCK_CHUNK_DELAY_MS),
                    "--latency-ms",
                    str(MOCK_LATENCY_MS),
                    "--request-log-size",
                    "200000",
                ],
                url=self.mock_url,
            )
        )
        for i in range(2):
            port = free_port()
            self._add(
                Slot(
                    f"api{i}",
                    [*ANYGATE, "api", "--port", str(port)],
                    url=f"http://127.0.0.1:{port}",
                )
            )
        for i, pool in enumerate(WORKER_POOLS):
            self._add(
                Slot(
                    f"worker{i}",
                    [
                        *ANYGATE,
                        "worker",
                        "--pool",
                        pool,
                        "--concurrency",
                        str(WORKER_CONCURRENCY),
                        "--shutdown-grace",
                        "5",
                    ],
                    pool=pool,
                )
            )
        self._add(Slot("control", [*ANYGATE, "control"]))

    def _add(self, slot: Slot) -> None:
        self.slots[slot.name] = slot

    @property
    def api_urls(self) -> list[str]:
        return [s.url for s in self.slots.values() if s.name.startswith("api") and s.url]

    def client(self) -> redis.Redis:
        """A plain client of the test's own, with short timeouts (Redis may be paused)."""
        return redis.Redis.from_url(
            self.redis.url, decode_responses=True, socket_timeout=2, socket_connect_timeout=2
        )

    # --- the whole stack ------------------------------------------------------------------

    def start(self) -> None:
        self.redis.start()
        for name in self.slots:
            self.start_slot(name)

    def stop(self) -> None:
        """Stop every process (control first, Redis last); never raises."""
        order = ["control", "worker0", "worker1", "worker2", "api0", "api1", "mock"]
        for name in order:
            slot = self.slots[name]
            if slot.proc is not None:
                with contextlib.suppress(Exception):
                    slot.proc.terminate(timeout=5)
        self.resume_redis()
        with contextlib.suppress(Exception):
            self.redis.stop()

    # --- one slot -------------------------------------------------------------------------

    def start_slot(self, name: str, *, wait: bool = True) -> ManagedProcess:
        """Start the slot's process; with ``wait``, return once it does its job (Redis up)."""
        slot = self.slots[name]
        started_ms = int(time.time() * 1000)
        ready = f"{slot.url}/readyz" if wait and name.startswith("api") else None
        if name == "mock":
            ready = f"{slot.url}/_mock/health"
        if name == "control" and wait:
            with contextlib.suppress(redis.RedisError), self.client() as r:
                r.delete(f"{self.prefix}control:ticked")
        proc = ManagedProcess.start(
            slot.args, env=self.env, ready_url=ready, timeout=READY_TIMEOUT_S
        )
        slot.proc = proc
        slot.history.append(proc)
        slot.held_down = False
        if wait and slot.pool is not None:
            self._await(proc, lambda: self._worker_registered(slot, started_ms))
        elif wait and name == "control":
            self._await(proc, self._control_ticked)
        return proc

    def kill_slot(self, name: str) -> int:
        """kill -9 (the process group the process leads); the slot stays down until restarted."""
        slot = self.slots[name]
        slot.held_down = True
        assert slot.proc is not None
        pid = slot.proc.pid
        slot.proc.kill()
        return pid

    def _await(self, proc: ManagedProcess, ready: Any) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if not proc.running:
                raise RuntimeError(f"process {proc.pid} died on start:\n{proc.log_tail()}")
            with contextlib.suppress(redis.RedisError):
                if ready():
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"process {proc.pid} never got ready:\n{proc.log_tail()}")
            time.sleep(0.05)

    def _worker_registered(self, slot: Slot, since_ms: int) -> bool:
        """Registered since ``since_ms`` (a heartbeat of its own); notes its worker id."""
        with self.client() as r:
            beats: Any = r.hgetall(f"{self.prefix}workers:{slot.pool}")
        for worker_id, value in beats.items():
            if int(value.split()[0]) >= since_ms and worker_id not in self._known_workers:
                self._known_workers.add(worker_id)
                slot.worker_id = worker_id
                return True
        return False

    def _control_ticked(self) -> bool:
        with self.client() as r:
            return bool(r.exists(f"{self.prefix}control:ticked"))

    def exited(self) -> list[Exit]:
        """Processes that ended on their own since the last call (the supervisor restarts them)."""
        found: list[Exit] = []
        for slot in self.slots.values():
            proc = slot.proc
            if proc is None or slot.held_down or proc.running:
                continue
            found.append(Exit(slot.name, proc.pid, proc.returncode, time.time(), proc.log_tail(20)))
            slot.proc = None
        return found

    # --- Redis faults ---------------------------------------------------------------------

    def pause_redis(self) -> None:
        """SIGSTOP: Redis holds every connection open and answers nothing."""
        assert self.redis.process is not None
        os.kill(self.redis.process.pid, signal.SIGSTOP)

    def resume_redis(self) -> None:
        if self.redis.process is not None and self.redis.process.poll() is None:
            os.kill(self.redis.process.pid, signal.SIGCONT)

    def stop_redis(self, *, hard: bool) -> None:
        """SIGTERM (Redis's own SHUTDOWN: the AOF is flushed) or SIGKILL (a crash)."""
        self.redis.stop(hard=hard)

    def start_redis(self) -> None:
        """Same port, same directory: the AOF is replayed before it answers."""
        self.redis.start()

    # --- evidence -------------------------------------------------------------------------

    def pids(self) -> dict[str, int]:
        """The current pid of every running process, Redis included."""
        out = {n: s.proc.pid for n, s in self.slots.items() if s.proc and s.proc.running}
        if self.redis.process is not None and self.redis.process.poll() is None:
            out["redis"] = self.redis.process.pid
        return out

    def logs(self) -> dict[str, Path]:
        """Every process's log, copied under ``root/logs`` as ``<slot>-<n>.log``."""
        folder = self.root / "logs"
        folder.mkdir(exist_ok=True)
        out: dict[str, Path] = {}
        for slot in self.slots.values():
            for n, proc in enumerate(slot.history):
                target = folder / f"{slot.name}-{n}.log"
                with contextlib.suppress(FileNotFoundError):
                    shutil.copyfile(proc.log_path, target)
                    out[target.stem] = target
        redis_log = self.redis.data_dir / "redis.log"
        if redis_log.exists():
            shutil.copyfile(redis_log, folder / "redis.log")
            out["redis"] = folder / "redis.log"
        return out
