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

from anygate.broker import KeySpace, Subscriptions

EVENT_SEPARATOR = "\x1e"


class ReplyRouter:
    def __init__(self, keys: KeySpace) -> None:
        self.instance = f"api-{secrets.token_hex(6)}"
        self._channel = keys.reply_channel(self.instance)
        self._waiting: dict[str, asyncio.Queue[str]] = {}

    async def start(self, subscriptions: Subscriptions) -> None:
        await subscriptions.listen(self._channel, self._deliver)

    def register(self, job_id: str) -> asyncio.Queue[str]:
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._waiting[job_id] = queue
        return queue

    def unregister(self, job_id: str) -> None:
        self._waiting.pop(job_id, None)

    def _deliver(self, message: str) -> None:
        job_id, _, events = message.partition("\n")
        queue = self._waiting.get(job_id)
        if queue is not None:
            for event in events.split(EVENT_SEPARATOR):
                queue.put_nowait(event)
