"""Job records read by many waiters in one loop turn, sent to Redis as one pipeline.

When jobs end at a thousand a second, as many long-polls wake and each reads its job's record
to answer. One ``HGETALL`` each through the connection pool costs a pool checkout, a write and a
read per waiter; gathered per turn they cost one of each for the lot (the same replies: a
pipeline is no transaction, and each record is read after its waiter was woken).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from anygate.broker.coalescer import Coalescer

Read = Callable[[list[str]], Awaitable[list[dict[str, str]]]]
"""Record hashes of job ids, in their order (``JobQueue._records``)."""

MAX_BATCH = 500


class BatchedReads:
    def __init__(self, read: Read) -> None:
        async def send(_group: str, job_ids: Sequence[str]) -> list[dict[str, str]]:
            return await read(list(job_ids))

        self._reads: Coalescer[str, str, dict[str, str]] = Coalescer(send, MAX_BATCH)

    async def record(self, job_id: str) -> dict[str, str]:
        """The job's record hash (empty when there is none), read with this turn's others; a
        failed read raises in each of its waiters, as its own read would have."""
        return await self._reads.submit("", job_id)
