"""One ``anygate dev`` per data folder (``anygate.ops.dev_lock``): a second one is told who
holds it; a holder that dies, even by SIGKILL, leaves the folder free."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from anygate.ops.dev_lock import (
    LOCK_NAME,
    DataDirLockedError,
    DevLock,
    LockHolder,
    locked_message,
)

URL = "http://127.0.0.1:8080"


@contextlib.contextmanager
def _held_in_child(data_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """A process that takes the lock, says so, and sleeps until killed."""
    code = f"""
        from pathlib import Path
        import time
        from anygate.ops.dev_lock import DevLock
        lock = DevLock.acquire(Path({str(data_dir)!r}), "http://127.0.0.1:9999")
        print("held", flush=True)
        time.sleep(60)
    """
    argv = [sys.executable, "-c", textwrap.dedent(code)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "held"
            yield child
        finally:
            child.kill()


def test_a_second_lock_on_the_folder_is_refused_naming_the_holder(tmp_path: Path) -> None:
    with DevLock.acquire(tmp_path, URL), pytest.raises(DataDirLockedError) as caught:
        DevLock.acquire(tmp_path, "http://127.0.0.1:9090")
    message = str(caught.value)
    assert f"pid {os.getpid()}" in message
    assert URL in message
    assert str(tmp_path) in message
    assert "--data-dir" in message


def test_the_lock_file_names_the_holder_and_is_emptied_on_release(tmp_path: Path) -> None:
    lock = DevLock.acquire(tmp_path, URL)
    held = json.loads((tmp_path / LOCK_NAME).read_text())
    assert held == {"pid": os.getpid(), "url": URL, "data_dir": str(tmp_path)}
    lock.release()
    assert (tmp_path / LOCK_NAME).read_text() == ""
    with DevLock.acquire(tmp_path, URL):  # free again
        pass


def test_a_holder_in_another_process_is_named(tmp_path: Path) -> None:
    with _held_in_child(tmp_path) as holder:
        expected = rf"\(pid {holder.pid}\) is running at http://127\.0\.0\.1:9999 with"
        with pytest.raises(DataDirLockedError, match=expected):
            DevLock.acquire(tmp_path, URL)


def test_a_sigkilled_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    with _held_in_child(tmp_path) as holder:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == holder.pid, "text stays"
    started = time.monotonic()
    with DevLock.acquire(tmp_path, URL):
        held = json.loads((tmp_path / LOCK_NAME).read_text())
        assert held["pid"] == os.getpid(), "the new holder's text replaces the dead one's"
    assert time.monotonic() - started < 1


def test_the_message_when_the_holder_has_not_written_its_name_yet(tmp_path: Path) -> None:
    message = locked_message(tmp_path, LockHolder.from_json(""))
    assert message.startswith("another anygate dev is starting with data dir ")
    assert LockHolder.from_json('{"pid": "x"}') is None
    assert LockHolder.from_json("[]") is None
