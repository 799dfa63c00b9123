"""Start, wait for and stop the child processes we own: one toolkit for ``anygate dev``, the
bench harness and the tests.

Every child runs in its own session, so it leads its own process group whose id is its pid;
stopping it signals that group (the child and anything it spawned) and nothing else. A group is
only signalled while its leader is unreaped, so the id cannot have been handed to an unrelated
process meanwhile. Waiting for a child to come up polls a probe against a deadline and fails
fast, with the tail of the child's log, when it died first or never answered.

A supervisor that may be killed outright (``anygate dev``) starts its children with
``die_with_parent``: on Linux the kernel sends each one SIGTERM when the supervisor dies, so a
SIGKILLed supervisor leaves no orphans holding its port and its Redis files.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

POLL_INTERVAL_S = 0.05

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class ProcessStartError(RuntimeError):
    """A child died or never came up; the message names what and ends with its log tail."""


def free_port() -> int:
    """A port the kernel just handed out on loopback; free unless something grabs it first."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Child:
    """A process we started, with the file its output goes to (``None``: our own stdout)."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def args(self) -> list[str]:
        args = self.popen.args
        return [str(arg) for arg in args] if isinstance(args, list) else [str(args)]

    @property
    def running(self) -> bool:
        """Still executing; checked without reaping, so the group can still be signalled."""
        return self.popen.returncode is None and not self._exited_unreaped()

    @property
    def returncode(self) -> int | None:
        """The exit code once it exited (reaping it), else ``None``."""
        return self.popen.poll()

    def _exited_unreaped(self) -> bool:
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def wait_exit(self, timeout: float) -> bool:
        """Wait for exit but leave the zombie, so the pid (and group id) cannot be reused yet."""
        deadline = time.monotonic() + timeout
        while not self._exited_unreaped():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def signal_group(self, signum: signal.Signals) -> None:
        if self.popen.returncode is not None:
            return  # already reaped: the id may belong to an unrelated group by now
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM the group, SIGKILL it if the child outlives ``timeout``, reap the child.
        Whatever is left of the group afterwards (children that ignored SIGTERM) is killed too."""
        if self.running:
            self.signal_group(signal.SIGTERM)
            self.wait_exit(timeout)
        return self.kill()

    def kill(self) -> int:
        """SIGKILL the whole group and reap the child."""
        self.signal_group(signal.SIGKILL)
        return self.popen.wait()

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of its combined stdout and stderr."""
        if self.log_path is None:
            return ""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def describe(self) -> str:
        return f"{self.name} (pid {self.pid}: {' '.join(self.args)})"


def parent_death_signal(signum: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send the child ``signum`` when we die (Linux's
    ``PR_SET_PDEATHSIG``; ``None`` elsewhere). It is armed in the child before it runs its
    program; a parent that died before that is caught by comparing the parent's pid. Only for
    a process that starts its children from its main thread and runs no others: the signal
    follows the *thread* that forked, and ``preexec_fn`` is unsafe beside threads."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, not after the fork
    parent = os.getpid()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signum)

    return arm


def start(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    cwd: str | os.PathLike[str] | None = None,
    die_with_parent: bool = False,
) -> Child:
    """Start ``argv`` in a session of its own; its output is appended to ``log_path`` (or goes
    to our stdout when there is none). ``env`` is the child's whole environment (``None``: ours).
    ``die_with_parent``: SIGTERM it when we die (``parent_death_signal``)."""
    preexec = parent_death_signal() if die_with_parent else None
    if log_path is None:
        popen = subprocess.Popen(  # noqa: S603 - our own commands, never a shell
            list(argv),
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=preexec,  # noqa: PLW1509 - see parent_death_signal
        )
        return Child(name, popen)
    with log_path.open("ab") as log:
        # The child writes through its own copy of the descriptor; ours can close at once.
        popen = subprocess.Popen(  # noqa: S603 - our own commands, never a shell
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=preexec,  # noqa: PLW1509 - see parent_death_signal
        )
    return Child(name, popen, log_path)


def stop_all(children: Iterable[Child], timeout: float = 10.0) -> None:
    """SIGTERM every child (newest first) at once, then give them ``timeout`` in all before
    SIGKILL, so a slow shutdown of one does not delay the signal to the next."""
    chosen = list(children)
    for child in reversed(chosen):
        if child.running:
            child.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in chosen:
        child.wait_exit(max(0.0, deadline - time.monotonic()))
        child.kill()


def first_exit(children: Iterable[Child]) -> Child | None:
    """The first child that is no longer running, if any."""
    return next((child for child in children if not child.running), None)


Probe = Callable[[], str | None]
"""Answers ``None`` once what is awaited is up, else a short note on why not yet."""


def wait_until(
    probe: Probe,
    *,
    what: str,
    watch: Iterable[Child] = (),
    timeout: float = 30.0,
    interval: float = POLL_INTERVAL_S,
) -> None:
    """Poll ``probe`` until it answers ``None``. Raise ``ProcessStartError`` naming ``what`` and
    the last note when ``timeout`` passes, or at once when a watched child exits."""
    watched = list(watch)
    deadline = time.monotonic() + timeout
    note = "no answer yet"
    while True:
        dead = first_exit(watched)
        if dead is not None:
            code = dead.popen.wait()
            raise ProcessStartError(
                f"{dead.describe()} exited with code {code} before {what} was up" + _tails([dead])
            )
        answer = probe()
        if answer is None:
            return
        note = answer
        if time.monotonic() >= deadline:
            raise ProcessStartError(f"{what} not up after {timeout:g} s ({note})" + _tails(watched))
        time.sleep(interval)


def _tails(children: Iterable[Child]) -> str:
    """The log tail of each child that has a log file of its own, for an error message."""
    shown = [(c, c.log_tail()) for c in children if c.log_path is not None]
    if len(shown) == 1:
        return f"\n{shown[0][1]}" if shown[0][1] else ""
    return "".join(f"\n--- {c.describe()}\n{tail}" for c, tail in shown)


def http_probe(url: str, *, request_timeout: float = 1.0) -> Probe:
    """Up once ``url`` answers 200."""

    def probe() -> str | None:
        try:
            status = httpx.get(url, timeout=request_timeout).status_code
        except httpx.HTTPError as exc:
            return repr(exc)
        return None if status == 200 else f"status {status}"

    return probe


def tcp_probe(host: str, port: int) -> Probe:
    """Up once ``host:port`` accepts a connection."""

    def probe() -> str | None:
        try:
            socket.create_connection((host, port), timeout=1.0).close()
        except OSError as exc:
            return repr(exc)
        return None

    return probe


def wait_http(
    url: str, *, watch: Iterable[Child] = (), timeout: float = 30.0, what: str | None = None
) -> None:
    """Wait until ``url`` answers 200 (see ``wait_until``)."""
    wait_until(http_probe(url), what=what or url, watch=watch, timeout=timeout)


def wait_tcp(
    host: str,
    port: int,
    *,
    watch: Iterable[Child] = (),
    timeout: float = 30.0,
    what: str | None = None,
) -> None:
    """Wait until ``host:port`` accepts connections (see ``wait_until``)."""
    wait_until(tcp_probe(host, port), what=what or f"{host}:{port}", watch=watch, timeout=timeout)
