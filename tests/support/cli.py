"""The ``anygate`` command run as a user runs it: a subprocess in a folder of its own, with an
environment that holds only what the test gives it (nothing ``ANYGATE_*`` leaks in from the
test runner's), and under a pseudo-terminal for the live views."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pyte

from tests.support.stack import ANYGATE

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][A-Za-z0-9]|\x1b[=>78]|\r")


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any ``ANYGATE*`` variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYGATE")}
    for name in ("NO_COLOR", "COLUMNS", "LINES"):  # rich reads them
        env.pop(name, None)
    return {**env, **(extra or {})}


def run_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path,
    ok: bool = True,
    stdin: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """``python -m anygate.ops ARGS`` with ``clean_env(env)`` in ``cwd``; ``ok``: exit 0."""
    done = subprocess.run(
        [*ANYGATE, *args],
        env=clean_env(env),
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if ok:
        assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def ctrl_c_as_at_a_terminal() -> None:
    """``preexec_fn`` of a CLI process a test will Ctrl-C: SIGINT back to its default action.

    A shell starts a background job with SIGINT ignored (a CI runner's ``cmd &`` does), the
    tests inherit that, and Python installs no KeyboardInterrupt handler in a process that
    starts with SIGINT ignored: the test's Ctrl-C would do nothing, where a user's at a
    terminal always arrives."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def plain(text: str) -> str:
    """Terminal output without its escape sequences (colours, cursor moves)."""
    return ANSI.sub("", text)


class PtyRun:
    """A CLI process whose stdin, stdout and stderr are a pseudo-terminal's slave end; the
    test reads the master end. ``screen`` is everything ever written, without escapes;
    ``display`` what a terminal shows now (a pyte emulator fed the same bytes)."""

    def __init__(self, proc: subprocess.Popen[bytes], master: int, columns: int, rows: int) -> None:
        self.proc = proc
        self.master = master
        self.raw = b""
        self._terminal = pyte.Screen(columns, rows)
        self._feed = pyte.ByteStream(self._terminal)

    @property
    def screen(self) -> str:
        return plain(self.raw.decode("utf-8", errors="replace"))

    @property
    def display(self) -> list[str]:
        """The terminal's lines as shown now, trailing blanks trimmed."""
        return [line.rstrip() for line in self._terminal.display]

    def read_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.master], [], [], min(left, 0.1))
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # the slave end closed: the process exited
                    return
                if not chunk:
                    return
                self.raw += chunk
                self._feed.feed(chunk)

    def read_until(self, *needles: str, timeout: float = 20) -> str:
        """Read until every needle is on the screen; the screen."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(n in self.screen for n in needles):
                return self.screen
            if self.proc.poll() is not None:
                self.read_for(0.2)
                break
            self.read_for(0.2)
        missing = [n for n in needles if n not in self.screen]
        assert not missing, f"not shown: {missing}\n--- screen ---\n{self.screen[-4000:]}"
        return self.screen

    def interrupt(self, timeout: float = 10) -> int:
        """Ctrl-C (SIGINT to the process), then its exit status."""
        self.proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.read_for(0.1)
        self.read_for(0.2)
        return self.proc.wait(timeout=1)


@contextlib.contextmanager
def under_pty(
    *args: str, env: Mapping[str, str], cwd: Path, columns: int = 200, rows: int = 80
) -> Iterator[PtyRun]:
    """Start ``anygate ARGS`` on a fresh pseudo-terminal of ``columns`` x ``rows``; killed (by
    its pid) if still running at the end."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    proc = subprocess.Popen(
        [*ANYGATE, *args],
        env=clean_env({"TERM": "xterm-256color", **env}),
        cwd=cwd,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        preexec_fn=ctrl_c_as_at_a_terminal,  # noqa: PLW1509 - a signal disposition, no locks
    )
    os.close(slave)
    run = PtyRun(proc, master, columns, rows)
    try:
        yield run
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        os.close(master)
