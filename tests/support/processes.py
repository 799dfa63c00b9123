"""Start, probe and stop helper processes (the mock provider, API servers, workers) in tests.

Each process runs in its own session, hence its own process group, so stopping it also stops
anything it spawned, and nothing outside that group is ever signalled. Each one's log is read
for errors by the tests' log check (``process_logs.py``): a process that logs an unexpected
error fails the test that was running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from tests.support.log_scan import LogExpectation
from tests.support.process_logs import KEEP_LOGS_ENV, PROCESS_LOGS

_POLL_INTERVAL = 0.05


def free_port() -> int:
    """A port the kernel just handed out on loopback; free unless something grabs it first."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ProcessStartError(RuntimeError):
    """The process died or never became ready; the message ends with its output tail."""


def process_kind(args: Sequence[str]) -> str:
    """What a command runs, for log expectations and failure messages: the ``anygate``
    sub-command (``api``, ``worker``, ``control``, ``dev``, ``mock-provider``...), else the
    program's name."""
    parts = [str(arg) for arg in args]
    for i, part in enumerate(parts):
        if part == "anygate.ops" or (i == 0 and Path(part).name == "anygate"):
            if i + 1 < len(parts):
                return parts[i + 1]
        elif part.startswith("anygate.ops."):
            return part.removeprefix("anygate.ops.").replace("_", "-")
    return Path(parts[0]).name if parts else "process"


class ManagedProcess:
    """A subprocess with its output in a temp log file, usable as a context manager.

    The log is watched from the start (``PROCESS_LOGS``); leaving the ``with`` block normally
    stops the process and checks the rest of its log at once.
    """

    def __init__(self, popen: subprocess.Popen[bytes], log_path: Path) -> None:
        self._popen = popen
        self.log_path = log_path
        self.label = process_kind(self._args)
        self.expected_logs: list[LogExpectation] = []
        if not os.environ.get(KEEP_LOGS_ENV):
            weakref.finalize(self, log_path.unlink, missing_ok=True)
        PROCESS_LOGS.watch(self)

    @classmethod
    def start(
        cls,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        ready_url: str | None = None,
        timeout: float = 20.0,
        cwd: str | os.PathLike[str] | None = None,
    ) -> ManagedProcess:
        """Launch `args`; with `ready_url`, return only once it answers 200.

        `env` is layered over the current environment, so PATH and the venv stay usable.
        """
        merged_env = {**os.environ, **(env or {})}
        with tempfile.NamedTemporaryFile(
            prefix="anygate-process-", suffix=".log", delete=False
        ) as log_file:
            # The child writes through its own copy of the descriptor; ours can close at once.
            popen = subprocess.Popen(
                list(args),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=merged_env,
                cwd=cwd,
                start_new_session=True,
            )
        process = cls(popen, Path(log_file.name))
        if ready_url is not None:
            try:
                process.wait_ready(ready_url, timeout=timeout)
            except BaseException:
                process.kill()
                raise
        return process

    @property
    def _args(self) -> list[str]:
        args = self._popen.args
        return [str(arg) for arg in args] if isinstance(args, list) else [str(args)]

    def expect_log(self, pattern: str, *, required: bool = True) -> Self:
        """Allow exactly the error ``pattern`` (a regex) in this process's log: for a test that
        provokes it on purpose. Unless ``required=False`` it must appear before the process
        ends."""
        self.expected_logs.append(LogExpectation(pattern, self.label, required))
        return self

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()

    @property
    def running(self) -> bool:
        """Still executing; checked without reaping so the group can still be signalled."""
        return self._popen.returncode is None and not self._exited_unreaped()

    def _exited_unreaped(self) -> bool:
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def _wait_exit(self, timeout: float) -> bool:
        """Wait for exit but leave the zombie, so the pid (and group id) cannot be reused yet."""
        deadline = time.monotonic() + timeout
        while not self._exited_unreaped():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def wait_ready(self, url: str, *, timeout: float = 20.0) -> None:
        """Poll `url` until it answers 200, failing fast if the process exits first."""
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        with httpx.Client(timeout=1.0) as client:
            while True:
                if not self.running:
                    code = self._popen.wait()
                    raise ProcessStartError(
                        f"{self.command} exited with code {code} before {url} was ready\n"
                        f"{self.log_tail()}"
                    )
                try:
                    response = client.get(url)
                except httpx.HTTPError as exc:
                    last_error = repr(exc)
                else:
                    if response.status_code == 200:
                        return
                    last_error = f"status {response.status_code}"
                if time.monotonic() >= deadline:
                    raise ProcessStartError(
                        f"{self.command} not ready at {url} after {timeout}s ({last_error})\n"
                        f"{self.log_tail()}"
                    )
                time.sleep(_POLL_INTERVAL)

    @property
    def command(self) -> str:
        return f"process {self.pid} ({' '.join(self._args)})"

    def _signal_group(self, signum: signal.Signals) -> None:
        if self._popen.returncode is not None:
            # Already reaped: the id may belong to an unrelated group by now.
            return
        # The child leads its own group (start_new_session), so its pgid is its pid.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM the group, SIGKILL it if the process outlives `timeout`, reap the process.

        Whatever is left of the group afterwards (children that ignored SIGTERM) is killed too.
        """
        if self.running:
            self._signal_group(signal.SIGTERM)
            self._wait_exit(timeout)
        return self.kill()

    def kill(self) -> int:
        """SIGKILL the whole group and reap the process."""
        self._signal_group(signal.SIGKILL)
        return self._popen.wait()

    def wait(self, timeout: float | None = None) -> int:
        return self._popen.wait(timeout)

    def log_tail(self, lines: int = 40) -> str:
        """The last `lines` lines of combined stdout and stderr."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True
        self.terminate()
        if exc_type is None:
            PROCESS_LOGS.check([self])
