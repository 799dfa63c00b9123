"""Faults of our own infrastructure, acted out on processes the tests started (never others)."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

from anygate.ops.embedded_redis import EmbeddedRedis


@contextlib.contextmanager
def redis_paused(server: EmbeddedRedis) -> Iterator[None]:
    """Freeze the test's own redis-server (SIGSTOP): connections stay open, nothing answers,
    as in a long fork, a stalled disk or a VM pause. Always resumed (SIGCONT) on the way out."""
    assert server.process is not None, "not started"
    assert server.process.poll() is None, "not running"
    pid = server.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)
