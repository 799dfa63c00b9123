"""The reply router splits a script's burst of events back into one event per waiting item."""

from __future__ import annotations

from anygate.api.replies import EVENT_SEPARATOR, ReplyRouter
from anygate.broker import JobEvent, KeySpace


async def test_a_burst_is_delivered_as_separate_events_in_order() -> None:
    router = ReplyRouter(KeySpace("t"))
    queue = router.register("job_a")
    first = '1-1\nchunk\n{"text": "one\\ntwo"}'
    second = "1-2\nchunk\n{}"
    router._deliver("job_a\n" + first + EVENT_SEPARATOR + second)
    router._deliver("job_other\n1-3\ncompleted\n{}")  # nobody waits for it here
    got = [JobEvent.from_message(queue.get_nowait()) for _ in range(queue.qsize())]
    assert [(e.id, e.type, e.data) for e in got] == [
        ("1-1", "chunk", '{"text": "one\\ntwo"}'),
        ("1-2", "chunk", "{}"),
    ]
    router.unregister("job_a")
    router._deliver("job_a\n1-4\ncompleted\n{}")
    assert queue.empty()
