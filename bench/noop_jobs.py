"""Jobs as the capacity bench queues them, and the no-op worker processes that drain them
(``noop_worker.py``, one process per pool, as in production)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from broker_bench import BODY, CHUNK
from scenarios import CHAT_PATH
from stack import POOL, TENANT

from anygate.broker import NewJob
from anygate.config import Priority

HERE = Path(__file__).resolve().parent
DRAIN_CONCURRENCY = 64
SETTLE_S = 0.5
"""Before and after a measured run: the previous run's last requests, and those cut off, finish."""


def new_job(stream: bool) -> NewJob:
    return NewJob(
        tenant=TENANT,
        pool=POOL,
        endpoint=CHAT_PATH,
        model="bench-model",
        body=BODY,
        priority=Priority.STANDARD,
        stream=stream,
    )


async def in_chunks(items: list[Any], call: Callable[[Any], Awaitable[object]]) -> None:
    for start in range(0, len(items), CHUNK):
        await asyncio.gather(*(call(item) for item in items[start : start + CHUNK]))


async def start_noop_worker(
    config_path: Path,
    log: Path,
    concurrency: int = DRAIN_CONCURRENCY,
    pool: str = POOL,
    chunks: int = 0,
) -> asyncio.subprocess.Process:
    """``chunks``: each streamed job's chunks (``noop_worker.py``)."""
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            str(HERE / "noop_worker.py"),
            str(config_path),
            str(concurrency),
            pool,
            str(chunks),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def log_tails(work: Path, pattern: str) -> str:
    return "\n".join(
        f"--- {log.name} ---\n{log.read_text()[-1500:]}" for log in sorted(work.glob(pattern))
    )
