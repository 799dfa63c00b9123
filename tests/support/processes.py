"""Helper processes of the tests (the mock provider, API servers, workers): started, awaited
and stopped by ``anygate.ops.processes``, with their logs under the tests' log check.

Each process runs in its own session, hence its own process group, so stopping it also stops
anything it spawned, and nothing outside that group is ever signalled. Each one's log is read
for errors by the tests' log check (``process_logs.py``): a process that logs an unexpected
error fails the test that was running.
"""

from __future__ import annotations

import os
import tempfile
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from anygate.ops.processes import Child, ProcessStartError, free_port, start, wait_http
from tests.support.log_scan import LogExpectation
from tests.support.process_logs import KEEP_LOGS_ENV, PROCESS_LOGS

__all__ = ["ManagedProcess", "ProcessStartError", "free_port", "process_kind"]


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
    """A child process with its output in a temp log file, usable as a context manager.

    The log is watched from the start (``PROCESS_LOGS``); leaving the ``with`` block normally
    stops the process and checks the rest of its log at once.
    """

    def __init__(self, child: Child) -> None:
        self._child = child
        assert child.log_path is not None
        self.log_path: Path = child.log_path
        self.label = child.name
        self.expected_logs: list[LogExpectation] = []
        if not os.environ.get(KEEP_LOGS_ENV):
            weakref.finalize(self, self.log_path.unlink, missing_ok=True)
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
        with tempfile.NamedTemporaryFile(
            prefix="anygate-process-", suffix=".log", delete=False
        ) as log_file:
            log_path = Path(log_file.name)
        merged_env = {**os.environ, **(env or {})}
        child = start(process_kind(args), args, env=merged_env, log_path=log_path, cwd=cwd)
        process = cls(child)
        if ready_url is not None:
            try:
                process.wait_ready(ready_url, timeout=timeout)
            except BaseException:
                process.kill()
                raise
        return process

    def expect_log(self, pattern: str, *, required: bool = True) -> Self:
        """Allow exactly the error ``pattern`` (a regex) in this process's log: for a test that
        provokes it on purpose. Unless ``required=False`` it must appear before the process
        ends."""
        self.expected_logs.append(LogExpectation(pattern, self.label, required))
        return self

    @property
    def child(self) -> Child:
        """The underlying ``anygate.ops.processes.Child`` (to watch it while waiting)."""
        return self._child

    @property
    def pid(self) -> int:
        return self._child.pid

    @property
    def returncode(self) -> int | None:
        return self._child.returncode

    @property
    def running(self) -> bool:
        """Still executing; checked without reaping so the group can still be signalled."""
        return self._child.running

    def wait_ready(self, url: str, *, timeout: float = 20.0) -> None:
        """Poll `url` until it answers 200, failing fast if the process exits first."""
        wait_http(url, watch=[self._child], timeout=timeout)

    @property
    def command(self) -> str:
        return f"process {self.pid} ({' '.join(self._child.args)})"

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM the group, SIGKILL it if the process outlives `timeout`, reap the process.

        Whatever is left of the group afterwards (children that ignored SIGTERM) is killed too.
        """
        return self._child.stop(timeout)

    def kill(self) -> int:
        """SIGKILL the whole group and reap the process."""
        return self._child.kill()

    def send_signal(self, signum: int) -> None:
        """Signal the process alone (not its group), e.g. SIGTERM for a graceful shutdown."""
        self._child.popen.send_signal(signum)

    def wait(self, timeout: float | None = None) -> int:
        return self._child.popen.wait(timeout)

    def log_tail(self, lines: int = 40) -> str:
        """The last `lines` lines of combined stdout and stderr."""
        return self._child.log_tail(lines)

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
