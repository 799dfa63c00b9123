"""A synchronous call whose reply channel was lost reads what it missed from the job's log, even
when that read fails at first: Redis confirms a subscription while it still loads its data
(reads answer ``LOADING``), and a call that gave up then relayed an answer with a hole in it."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from types import SimpleNamespace
from typing import Any, cast

from redis.exceptions import BusyLoadingError
from starlette.requests import Request

from anygate.api.gateway import Gateway
from anygate.api.replies import Mailbox
from anygate.api.sync_call import SyncCall
from anygate.broker import JobEvent, NewJob
from anygate.broker.notify import RESYNC
from anygate.config import Priority

LOG = [
    JobEvent("1-0", "chunk", '"Mock r"', 1),
    JobEvent("2-0", "chunk", '"eply t"', 1),
    JobEvent("3-0", "chunk", '"o: you"', 1),
    JobEvent("4-0", "completed", "{}", 1),
]


class FakeBroker:
    """The job's log, whose reads fail ``failures`` times before they answer."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.reads = 0
        self.keys = SimpleNamespace(shard_of_pool=lambda pool: "")

    async def enqueue(self, job: NewJob, job_id: str) -> None:
        return None

    async def events_after(self, job_id: str, after: str | None) -> list[JobEvent]:
        self.reads += 1
        if self.failures:
            self.failures -= 1
            raise BusyLoadingError("Redis is loading the dataset in memory")
        return [e for e in LOG if after is None or e.id > after]


class FakeReplies:
    instance = "api-test"

    def __init__(self) -> None:
        self.mailbox = Mailbox()

    def register(self, job_id: str) -> Mailbox:
        return self.mailbox

    def unregister(self, job_id: str) -> None:
        return None


def _gateway(broker: FakeBroker) -> tuple[Gateway, FakeReplies]:
    async def barrier() -> None:
        return None

    server = SimpleNamespace(sync_timeout_s=30.0, keepalive_s=0.3, cancel_on_disconnect="never")
    replies = FakeReplies()
    gw = SimpleNamespace(broker=broker, replies=replies, config=SimpleNamespace(server=server))
    gw.barrier = barrier
    return cast(Gateway, gw), replies


def _request() -> Request:
    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the caller never leaves
        raise AssertionError

    return cast(Request, SimpleNamespace(receive=receive))


def _job() -> NewJob:
    return NewJob("acme", "openai", "/v1/chat/completions", "m", b"{}", Priority.INTERACTIVE)


async def _relayed(broker: FakeBroker) -> list[JobEvent]:
    """Chunk 1 arrives live, the channel is lost while chunk 2 is published, and the rest
    arrives live after the channel is back."""
    gw, replies = _gateway(broker)
    seen: list[JobEvent] = []
    async with SyncCall(gw, _request(), _job()) as call:
        box = replies.mailbox
        box.put_nowait(LOG[0].to_message())
        box.put_nowait(RESYNC)
        box.put_nowait(LOG[2].to_message())
        box.put_nowait(LOG[3].to_message())
        first = await call.next_event()
        async for burst in call.bursts(first):
            seen += burst
    return seen


def _run(coro: Coroutine[Any, Any, list[JobEvent]]) -> list[JobEvent]:
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_a_resync_brings_the_event_published_while_the_channel_was_down() -> None:
    broker = FakeBroker(failures=0)
    seen = _run(_relayed(broker))
    assert [e.id for e in seen] == ["1-0", "2-0", "3-0", "4-0"]
    assert broker.reads == 1


def test_a_resync_whose_read_fails_is_tried_again_before_any_later_event() -> None:
    broker = FakeBroker(failures=3)
    seen = _run(_relayed(broker))
    assert [e.id for e in seen if e.type != "keepalive"] == ["1-0", "2-0", "3-0", "4-0"]
    assert broker.reads == 4


def test_keepalives_go_on_while_a_resync_is_due() -> None:
    """Four failed reads take a second: the streamed call's keep-alives (every 0.3 s) still
    reach its caller meanwhile, and the answer is whole in the end."""
    broker = FakeBroker(failures=4)
    seen = _run(_relayed(broker))
    assert any(e.type == "keepalive" for e in seen)
    assert [e.id for e in seen if e.type != "keepalive"] == ["1-0", "2-0", "3-0", "4-0"]
