"""Job records read by many waiters in one loop turn, sent to Redis as one pipeline.

When jobs end at a thousand a second, as many long-polls wake and each reads its job's record
to answer. One ``HGETALL`` each through the connection pool costs a pool checkout, a write and a
read per waiter; gathered per turn they cost one of each for the lot (the same replies: a
pipeline is no transaction, and each record is read after its waiter was woken).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

Read = Callable[[list[str]], Awaitable[list[dict[str, str]]]]
"""Record hashes of job ids, in their order (``JobQueue._records``)."""

MAX_BATCH = 500


class BatchedReads:
    def __init__(self, read: Read) -> None:
        self._read = read
        self._pending: list[tuple[str, asyncio.Future[dict[str, str]]]] = []
        self._scheduled = False
        self._inflight: set[asyncio.Task[None]] = set()

    async def record(self, job_id: str) -> dict[str, str]:
        """The job's record hash (empty when there is none), read with this turn's others."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, str]] = loop.create_future()
        self._pending.append((job_id, future))
        if len(self._pending) >= MAX_BATCH:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _send(self, batch: list[tuple[str, asyncio.Future[dict[str, str]]]]) -> None:
        try:
            hashes = await self._read([job_id for job_id, _ in batch])
        except BaseException as exc:  # each waiter raises what its own read would have
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), found in zip(batch, hashes, strict=True):
            if not future.done():  # a waiter whose client left was cancelled meanwhile
                future.set_result(found)
