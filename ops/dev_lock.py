"""One ``anygate dev`` per data folder: an OS lock on ``<data-dir>/dev.lock``.

Two stacks on one folder would share one Redis AOF (two servers appending to one file) and
overwrite each other's config and ``dev.env``. The lock is ``flock``: the kernel holds it for
the open file and drops it when the process ends, however it ends (SIGKILL, a crash), so a dead
``anygate dev`` never leaves a stale lock behind. The file also says who holds it (pid, URL,
folder), for the error the next one prints; that text is advice, the lock is the flock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

LOCK_NAME = "dev.lock"


class DataDirLockedError(RuntimeError):
    """Another ``anygate dev`` holds the folder; the message names it."""


@dataclass(frozen=True)
class LockHolder:
    pid: int
    url: str
    data_dir: str

    def to_json(self) -> str:
        return json.dumps({"pid": self.pid, "url": self.url, "data_dir": self.data_dir})

    @classmethod
    def from_json(cls, text: str) -> LockHolder | None:
        """``None`` for a file this cannot read (empty while its holder is writing it)."""
        try:
            found = json.loads(text)
            return cls(int(found["pid"]), str(found["url"]), str(found["data_dir"]))
        except (ValueError, TypeError, KeyError):
            return None


def locked_message(data_dir: Path, holder: LockHolder | None) -> str:
    """What the second ``anygate dev`` on a folder is told."""
    if holder is None:
        return (
            f"another anygate dev is starting with data dir {data_dir}; stop it first, "
            "or pass another --data-dir"
        )
    return (
        f"another anygate dev (pid {holder.pid}) is running at {holder.url} with data dir "
        f"{holder.data_dir}; stop it first, or pass another --data-dir"
    )


class DevLock:
    """``with DevLock.acquire(data_dir, url):`` the folder is ours until the block ends (or
    the process does). The descriptor is not inherited by the children we start (Python opens
    files close-on-exec), so the lock lives exactly as long as this process."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def acquire(cls, data_dir: Path, url: str) -> DevLock:
        """Take the lock at once or raise ``DataDirLockedError``; never waits."""
        path = data_dir / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = _read_all(fd)
            os.close(fd)
            raise DataDirLockedError(locked_message(data_dir, LockHolder.from_json(text))) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, LockHolder(os.getpid(), url, str(data_dir)).to_json().encode(), 0)
        return cls(fd, path)

    def release(self) -> None:
        """Empty the file (it names nobody now) and drop the lock."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the last descriptor drops the flock

    def __enter__(self) -> DevLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_all(fd: int) -> str:
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 4096, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")
