"""The C command packer must put exactly redis-py's bytes on the wire."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError

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


class _ClosedWriter:
    """What uvloop does when the server closed the socket under a connection."""

    def writelines(self, _data: object) -> None:
        raise RuntimeError(
            "unable to perform operation on <TCPTransport closed=True>; the handler is closed"
        )

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        return None

    def is_closing(self) -> bool:
        return True


async def test_a_write_on_a_closed_transport_is_a_connection_error() -> None:
    """So that the client's retry and the processes' outage handling see it."""
    conn = CPackedConnection(socket_timeout=1.0)
    conn._writer = _ClosedWriter()  # type: ignore[assignment]
    conn._reader = object()  # type: ignore[assignment]
    with pytest.raises(RedisConnectionError, match="closed"):
        await conn.send_packed_command(b"PING", check_health=False)
    assert not conn.is_connected, "the broken connection was dropped"
