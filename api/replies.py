"""Route the events of synchronous calls to the coroutines waiting for them.

Each API process listens on one reply channel for its whole life; a job enqueued by a
synchronous call names that channel (``reply_to``) and its scripts publish the events a caller
needs there (not ``started``), prefixed with the job id. Waiting for a job then costs a dict
entry, not a SUBSCRIBE and an UNSUBSCRIBE round trip per call. A script that records several
events (a burst of chunks) sends them in one message, separated by ASCII 30, which JSON text
never contains.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import deque

from anygate.broker import KeySpace, Subscriptions
from anygate.broker.notify import RESYNC

EVENT_SEPARATOR = "\x1e"


class Mailbox:
    """The events of one waiting call: a deque and at most one waiter. An ``asyncio.Queue``
    does the same with far more machinery; creating one per call showed in API profiles."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[str] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put_nowait(self, item: str) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def get_nowait(self) -> str:
        """The oldest item; ``IndexError`` when there is none."""
        return self._items.popleft()

    def push_front(self, item: str) -> None:
        """Put an item back at the head (taken but not handled yet)."""
        self._items.appendleft(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> str:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()


class ReplyRouter:
    def __init__(self, keys: KeySpace) -> None:
        self.instance = f"api-{secrets.token_hex(6)}"
        self._channel = keys.reply_channel(self.instance)
        self._waiting: dict[str, Mailbox] = {}

    async def start(self, subscriptions: Subscriptions) -> None:
        await subscriptions.listen(self._channel, self._deliver, self._resync)

    def _resync(self) -> None:
        """The reply channel was lost for a while (Redis restarted): every waiting call reads
        what it may have missed from its job's log."""
        for mailbox in self._waiting.values():
            mailbox.put_nowait(RESYNC)

    def register(self, job_id: str) -> Mailbox:
        mailbox = Mailbox()
        self._waiting[job_id] = mailbox
        return mailbox

    def unregister(self, job_id: str) -> None:
        self._waiting.pop(job_id, None)

    def _deliver(self, message: str) -> None:
        job_id, _, events = message.partition("\n")
        queue = self._waiting.get(job_id)
        if queue is not None:
            for event in events.split(EVENT_SEPARATOR):
                queue.put_nowait(event)
