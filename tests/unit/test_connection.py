"""The C command packer must put exactly redis-py's bytes on the wire."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import Connection

from anygate.broker.connection import CPackedConnection


@pytest.mark.parametrize(
    "args",
    [
        ("EVALSHA", "a" * 40, 2, "ag:{x}:job:1", "k2", "prefix", 7, "", '{"é":1}', 3.5),
        ("CONFIG GET", "maxmemory"),
        (b"SET", b"k", b"\x00\xff"),
        ("SET", "k", memoryview(b"raw bytes")),
    ],
)
def test_packs_the_same_bytes_as_redis_py(args: tuple[object, ...]) -> None:
    ours = b"".join(CPackedConnection().pack_command(*args))
    theirs = b"".join(bytes(part) for part in Connection().pack_command(*args))
    assert ours == theirs
