"""Reads of job records gathered per loop turn (``broker/record_batch.py``)."""

from __future__ import annotations

import asyncio

from anygate.broker.record_batch import BatchedReads


class _Store:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.fail: Exception | None = None

    async def read(self, job_ids: list[str]) -> list[dict[str, str]]:
        self.calls.append(job_ids)
        await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail
        return [{"id": j} if j != "gone" else {} for j in job_ids]


async def test_reads_of_one_turn_are_one_call_in_order() -> None:
    store = _Store()
    reads = BatchedReads(store.read)
    got = await asyncio.gather(*(reads.record(j) for j in ("a", "b", "gone", "c")))
    assert got == [{"id": "a"}, {"id": "b"}, {}, {"id": "c"}]
    assert store.calls == [["a", "b", "gone", "c"]]
    assert await reads.record("d") == {"id": "d"}
    assert store.calls[1:] == [["d"]]


async def test_a_cancelled_reader_leaves_the_others_their_records() -> None:
    store = _Store()
    reads = BatchedReads(store.read)
    tasks = [asyncio.create_task(reads.record(j)) for j in ("a", "b", "c")]
    await asyncio.sleep(0)
    tasks[1].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert done[0] == {"id": "a"}
    assert isinstance(done[1], asyncio.CancelledError)
    assert done[2] == {"id": "c"}


async def test_a_failed_read_raises_in_every_reader_of_the_batch() -> None:
    store = _Store()
    store.fail = ConnectionError("redis went away")
    reads = BatchedReads(store.read)
    results = await asyncio.gather(*(reads.record(j) for j in "ab"), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    store.fail = None
    assert await reads.record("x") == {"id": "x"}


async def test_a_large_turn_is_split_into_bounded_batches() -> None:
    store = _Store()
    reads = BatchedReads(store.read)
    await asyncio.gather(*(reads.record(str(i)) for i in range(1200)))
    assert sorted(len(c) for c in store.calls) == [200, 500, 500]
