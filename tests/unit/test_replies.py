"""The reply router splits a script's burst of events back into one event per waiting item."""

from __future__ import annotations

import asyncio

import pytest

from anygate.api.replies import EVENT_SEPARATOR, Mailbox, ReplyRouter
from anygate.broker import JobEvent, KeySpace


async def test_a_burst_is_delivered_as_separate_events_in_order() -> None:
    router = ReplyRouter(KeySpace("t"))
    queue = router.register("job_a")
    first = '1-1\nchunk\n2\n{"text": "one\\ntwo"}'
    second = "1-2\nchunk\n2\n{}"
    router._deliver("job_a\n" + first + EVENT_SEPARATOR + second)
    router._deliver("job_other\n1-3\ncompleted\n1\n{}")  # nobody waits for it here
    got = [JobEvent.from_message(queue.get_nowait()) for _ in range(len(queue))]
    assert [(e.id, e.type, e.attempt, e.data) for e in got] == [
        ("1-1", "chunk", 2, '{"text": "one\\ntwo"}'),
        ("1-2", "chunk", 2, "{}"),
    ]
    router.unregister("job_a")
    router._deliver("job_a\n1-4\ncompleted\n\n{}")
    assert not queue


async def test_a_mailbox_wakes_its_waiter_and_keeps_order() -> None:
    mailbox = Mailbox()
    waiter = asyncio.create_task(mailbox.get())
    await asyncio.sleep(0)
    mailbox.put_nowait("a")
    mailbox.put_nowait("b")
    assert await waiter == "a"
    assert await mailbox.get() == "b"
    with pytest.raises(IndexError):
        mailbox.get_nowait()
