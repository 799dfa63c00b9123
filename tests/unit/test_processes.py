"""The process toolkit (``anygate.ops.processes``) on tiny Python children: a wait fails fast,
naming what did not come up and showing the child's log, and a stop ends the child's whole
process group and nothing else."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest

from anygate.ops.processes import (
    ProcessStartError,
    free_port,
    start,
    stop_all,
    wait_tcp,
    wait_until,
)


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers signal 0: count it as gone
    status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return status != "Z"


def test_a_child_that_dies_while_awaited_fails_the_wait_with_its_log(tmp_path: Path) -> None:
    child = start(
        "doomed",
        _python("import sys; print('cannot bind: port taken'); sys.exit(3)"),
        log_path=tmp_path / "doomed.log",
    )
    with pytest.raises(ProcessStartError) as caught:
        wait_until(lambda: "not yet", what="the doomed server", watch=[child], timeout=10)
    message = str(caught.value)
    assert "doomed" in message
    assert "exited with code 3 before the doomed server was up" in message
    assert "cannot bind: port taken" in message


def test_a_wait_that_times_out_names_what_and_the_last_answer(tmp_path: Path) -> None:
    child = start("sleeper", _python("import time; time.sleep(30)"), log_path=tmp_path / "s.log")
    try:
        started = time.monotonic()
        with pytest.raises(ProcessStartError, match=r"the answer not up after 0.3 s \(still 42\)"):
            wait_until(lambda: "still 42", what="the answer", watch=[child], timeout=0.3)
        assert time.monotonic() - started < 5
    finally:
        child.stop()


def test_wait_tcp_returns_once_the_child_listens(tmp_path: Path) -> None:
    port = free_port()
    server = f"""
        import socket, time
        time.sleep(0.3)
        s = socket.socket(); s.bind(("127.0.0.1", {port})); s.listen(); time.sleep(30)
    """
    child = start("listener", _python(server), log_path=tmp_path / "l.log")
    try:
        wait_tcp("127.0.0.1", port, watch=[child], timeout=10)
        assert child.running
    finally:
        child.stop()


def test_stop_ends_the_whole_group_even_a_child_that_ignores_sigterm(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    parent = f"""
        import subprocess, sys, time
        code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
        grandchild = subprocess.Popen([sys.executable, "-c", code])
        open({str(pid_file)!r}, "w").write(str(grandchild.pid))
        time.sleep(60)
    """
    child = start("parent", _python(parent), log_path=tmp_path / "p.log")
    wait_until(lambda: None if pid_file.exists() else "no pid yet", what="the grandchild")
    grandchild = int(pid_file.read_text())
    assert child.stop(timeout=5) == -signal.SIGTERM
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild), "the grandchild outlived its group's stop"


def test_stop_all_stops_every_child_and_reaps_it(tmp_path: Path) -> None:
    children = [
        start(f"c{i}", _python("import time; time.sleep(30)"), log_path=tmp_path / f"{i}.log")
        for i in range(3)
    ]
    stop_all(children, timeout=5)
    assert [c.popen.returncode for c in children] == [-signal.SIGTERM] * 3
    assert not any(c.running for c in children)


def _supervisor(pid_file: Path, *, die_with_parent: bool) -> list[str]:
    """A process that starts a sleeper through ``start`` and writes the sleeper's pid."""
    return _python(f"""
        import sys, time
        from anygate.ops.processes import start
        child = start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"],
                      die_with_parent={die_with_parent})
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(60)
    """)


@pytest.mark.parametrize("die_with_parent", [True, False])
def test_a_child_started_to_die_with_its_parent_ends_when_the_parent_is_killed(
    tmp_path: Path, die_with_parent: bool
) -> None:
    """``die_with_parent``: a SIGKILLed supervisor leaves no orphan (the kernel SIGTERMs it);
    without it the child, in a session of its own, lives on."""
    pid_file = tmp_path / "sleeper.pid"
    parent = start(
        "supervisor",
        _supervisor(pid_file, die_with_parent=die_with_parent),
        log_path=tmp_path / "s.log",
    )
    wait_until(lambda: None if pid_file.exists() else "no pid yet", what="the sleeper")
    sleeper = int(pid_file.read_text())
    parent.kill()
    try:
        deadline = time.monotonic() + (5 if die_with_parent else 1)
        while _alive(sleeper) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _alive(sleeper) is not die_with_parent
    finally:
        if _alive(sleeper):
            os.kill(sleeper, signal.SIGKILL)
