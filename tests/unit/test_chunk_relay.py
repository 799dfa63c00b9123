"""The worker's chunk relay: group commit without reordering, chunks numbered for idempotent
appends, loss of the job noticed, and a broken send kept away from the upstream call."""

from __future__ import annotations

import asyncio

import pytest

from anygate.broker import ClaimedJob
from anygate.config import Priority
from anygate.workers.adapters.base import JobLostError
from anygate.workers.chunk_relay import ChunkRelay

JOB = ClaimedJob("job_x", 1, "t", "/v1/chat/completions", "m", b"{}", Priority.INTERACTIVE, True)


class SlowBroker:
    """Records each append call; each takes one loop turn per ``delay`` step, like a round trip."""

    def __init__(self, *, owned_for: int = 1_000, fail: Exception | None = None) -> None:
        self.calls: list[tuple[bytes | str, ...]] = []
        self.first_seqs: list[int] = []
        self.owned_for = owned_for
        self.fail = fail

    async def append(self, job: ClaimedJob, etype: str, *data: bytes | str, first_seq: int) -> bool:
        assert etype == "chunk"
        await asyncio.sleep(0.001)
        if self.fail is not None:
            raise self.fail
        self.calls.append(data)
        self.first_seqs.append(first_seq)
        return len(self.calls) <= self.owned_for


async def test_a_burst_goes_out_in_two_calls_in_order() -> None:
    broker = SlowBroker()
    relay = ChunkRelay(broker, JOB)  # type: ignore[arg-type]
    for i in range(20):
        await relay(str(i).encode())  # no await inside: the whole burst queues at once
    await relay.flush()
    assert [c for call in broker.calls for c in call] == [str(i).encode() for i in range(20)]
    assert len(broker.calls) == 1


async def test_chunks_spaced_out_go_one_per_call() -> None:
    broker = SlowBroker()
    relay = ChunkRelay(broker, JOB)  # type: ignore[arg-type]
    for i in range(3):
        await relay(str(i).encode())
        await asyncio.sleep(0.01)  # a slow upstream: each chunk is sent before the next comes
    await relay.flush()
    assert broker.calls == [(b"0",), (b"1",), (b"2",)]


async def test_chunks_arriving_during_a_call_are_batched_into_the_next() -> None:
    broker = SlowBroker()
    relay = ChunkRelay(broker, JOB)  # type: ignore[arg-type]
    await relay(b"a")
    await asyncio.sleep(0)  # the first call is now in flight
    await relay(b"b")
    await relay(b"c")
    await relay.flush()
    assert broker.calls == [(b"a",), (b"b", b"c")]


async def test_a_lost_job_stops_the_adapter_at_its_next_chunk() -> None:
    broker = SlowBroker(owned_for=0)
    relay = ChunkRelay(broker, JOB)  # type: ignore[arg-type]
    await relay(b"a")
    await relay.settle()
    assert relay.lost
    with pytest.raises(JobLostError):
        await relay(b"b")
    with pytest.raises(JobLostError):
        await relay.flush()


async def test_each_call_says_the_number_of_its_first_chunk() -> None:
    """Numbers run on across calls, so a call repeated after a lost reply appends nothing
    twice (``append-2.lua`` skips numbers it has)."""
    broker = SlowBroker()
    relay = ChunkRelay(broker, JOB)  # type: ignore[arg-type]
    await relay(b"a")
    await asyncio.sleep(0)
    await relay(b"b")
    await relay(b"c")
    await relay.flush()
    await relay(b"d")
    await relay.flush()
    assert broker.first_seqs == [1, 2, 4]


async def test_a_failed_send_never_reaches_the_upstream_call_only_flush() -> None:
    """A send that fails (not Redis being away, which the worker's broker waits out: a bug)
    must not abort the provider call mid-stream; the outcome is not recorded either."""
    relay = ChunkRelay(SlowBroker(fail=ValueError("bug")), JOB)  # type: ignore[arg-type]
    await relay(b"a")
    await relay.settle()
    await relay(b"b")  # the adapter goes on
    with pytest.raises(ValueError, match="bug"):
        await relay.flush()


async def test_abandon_drops_what_was_not_sent() -> None:
    broker = SlowBroker()
    relay = ChunkRelay(broker, JOB)  # type: ignore[arg-type]
    await relay(b"a")
    relay.abandon()
    await asyncio.sleep(0.01)
    assert broker.calls == []
