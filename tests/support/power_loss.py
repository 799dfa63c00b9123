"""Simulate a power loss under a real redis-server.

``kill -9`` alone is not one: whatever Redis wrote is in the page cache and reaches the disk
anyway. Here redis-server runs with ``fsync_log.c`` preloaded, which records what each
fsync/fdatasync made durable; pulling the plug is then ``kill -9`` followed by putting the data
directory back to that durable image:

- a file keeps only the bytes its last recorded fsync covered (none if it was never fsynced);
- a file exists only if its name is durable: it was fsynced under that name (ext4 and xfs
  commit a new file's directory entry with it), or its directory was fsynced while it held that
  name; anything else (a temp file, a rename nobody synced) is gone.

That is the worst a crash-consistent filesystem may leave, minus torn writes: Redis writes whole
commands per flush, and loads an AOF cut at a command boundary (Redis 7's multi-part
``appendonlydir/`` as well as 6.2's single ``appendonly.aof``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from anygate.ops.embedded_redis import EmbeddedRedis

SHIM_SOURCE = Path(__file__).with_name("fsync_log.c")
LOG_ENV = "ANYGATE_FSYNC_LOG"

Inode = tuple[int, int]


class ShimUnavailableError(AssertionError):
    """The simulation cannot be faithful here: say why instead of testing nothing."""


def build_shim(work_dir: Path) -> Path:
    """Compile the shim with the system gcc into ``work_dir``."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise ShimUnavailableError("the power-loss test needs gcc to build its fsync shim")
    out = work_dir / "fsync_log.so"
    done = subprocess.run(  # our own source, compiled into the test's temp dir
        [gcc, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(out), str(SHIM_SOURCE), "-ldl"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ShimUnavailableError(f"gcc could not build the fsync shim:\n{done.stderr}")
    return out


def require_dynamic(binary: str) -> None:
    """LD_PRELOAD only reaches a dynamically linked program: one with an ELF interpreter."""
    with open(binary, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            raise ShimUnavailableError(f"{binary} is not a 64-bit ELF program")
        order = "little" if head[5] == 1 else "big"
        phoff = int.from_bytes(head[32:40], order)
        phentsize = int.from_bytes(head[54:56], order)
        phnum = int.from_bytes(head[56:58], order)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    pt_interp = 3
    for i in range(phnum):
        if int.from_bytes(table[i * phentsize : i * phentsize + 4], order) == pt_interp:
            return
    raise ShimUnavailableError(
        f"{binary} is statically linked: LD_PRELOAD cannot wrap its fsync, so a power loss "
        "cannot be simulated with it"
    )


@dataclass
class DurableImage:
    """What the fsync log says survives a power loss."""

    sizes: dict[Inode, int] = field(default_factory=dict)
    names: set[tuple[str, Inode]] = field(default_factory=set)
    dir_entries: dict[str, dict[str, Inode]] = field(default_factory=dict)
    loaded_pids: list[int] = field(default_factory=list)
    last_aof_fsync: float = 0.0
    """When the latest fsync of an AOF file began (``time.monotonic()``'s clock)."""

    @classmethod
    def parse(cls, text: str) -> DurableImage:
        image = cls()
        current_dir: dict[str, Inode] | None = None
        for line in text.splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "L":
                image.loaded_pids.append(int(rest))
            elif kind == "F":
                at, dev, ino, size, path = rest.split(" ", 4)
                inode = (int(dev), int(ino))
                image.sizes[inode] = int(size)  # the latest fsync wins (see fsync_log.c)
                image.names.add((path, inode))
                if "appendonly" in path:
                    image.last_aof_fsync = float(at)
            elif kind == "D":
                _dev, _ino, path = rest.split(" ", 2)
                current_dir = image.dir_entries[path] = {}
            elif kind == "E" and current_dir is not None:
                dev, ino, name = rest.split(" ", 2)
                current_dir[name] = (int(dev), int(ino))
        return image

    def name_is_durable(self, path: Path, inode: Inode) -> bool:
        if (str(path), inode) in self.names:
            return True
        return self.dir_entries.get(str(path.parent), {}).get(path.name) == inode


@dataclass
class PowerLoss:
    """What pulling the plug took away."""

    removed: list[str]
    cut_bytes: dict[str, int]

    @property
    def lost_bytes(self) -> int:
        return sum(self.cut_bytes.values())


class FsyncShim:
    """A compiled shim and the log one redis-server writes through it."""

    def __init__(self, work_dir: Path) -> None:
        self.library = build_shim(work_dir)
        self.log = work_dir / "fsync.log"

    def env(self) -> Mapping[str, str]:
        return {"LD_PRELOAD": str(self.library), LOG_ENV: str(self.log)}

    def image(self) -> DurableImage:
        return DurableImage.parse(self.log.read_text() if self.log.exists() else "")

    def require_applied(self, server: EmbeddedRedis) -> None:
        """Fail loudly unless the shim is loaded in this server and has seen an AOF fsync."""
        assert server.process is not None
        image = self.image()
        if server.process.pid not in image.loaded_pids:
            raise ShimUnavailableError(
                f"the fsync shim did not load into {server.binary} (pid {server.process.pid}); "
                "a power loss cannot be simulated"
            )
        if not any("appendonly" in path for path, _inode in image.names):
            raise ShimUnavailableError(f"{server.binary} fsynced no AOF file through the shim")


def pull_plug(server: EmbeddedRedis, shim: FsyncShim) -> PowerLoss:
    """``kill -9`` the server, then leave its AOF as a power loss would have (see above)."""
    server.stop(hard=True)
    image = shim.image()
    removed: list[str] = []
    cut: dict[str, int] = {}
    for path in sorted(server.data_dir.rglob("*")):
        if not path.is_file() or not path.name.startswith(("appendonly", "temp-")):
            continue  # redis.log and the like are not part of the data set
        st = path.stat()
        inode = (st.st_dev, st.st_ino)
        if not image.name_is_durable(path, inode):
            path.unlink()
            removed.append(path.name)
            continue
        durable = image.sizes.get(inode, 0)
        if st.st_size > durable:
            os.truncate(path, durable)
            cut[path.name] = st.st_size - durable
    return PowerLoss(removed, cut)
