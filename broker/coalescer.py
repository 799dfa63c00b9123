"""Many callers' items, one call per group and event-loop turn: each caller awaits its own answer.

A worker finishing 30 jobs in one turn would make 30 script calls; each call costs Redis its
own overhead and its own writes of what the jobs share (the pool's counters, its lease set).
``Coalescer.submit`` queues an item under a group key and returns the caller's own future; one
loop turn later (after every task that turn woke has run) each group's items go to ``send`` in
one call, in the order they were submitted. ``send`` answers with one outcome per item: a value,
or an exception that reaches that item's caller alone. An exception raised by ``send`` itself
(Redis away, the whole call refused) reaches every caller of that call; other groups' calls are
not affected. Nothing is retried here: that is ``send``'s business (a worker's script calls wait
out an outage, ``RedisLink``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
I = TypeVar("I")  # noqa: E741 - the item type, beside K and R
R = TypeVar("R")

Send = Callable[[K, Sequence[I]], Awaitable[Sequence[R | BaseException]]]

MAX_ITEMS = 64
"""A group's call is sent at once when it holds this many items: bounded script run time."""


class Coalescer(Generic[K, I, R]):
    def __init__(self, send: Send[K, I, R], max_items: int = MAX_ITEMS) -> None:
        self._send = send
        self._max_items = max_items
        self._groups: dict[K, list[tuple[I, asyncio.Future[R]]]] = {}
        self._scheduled = False
        self._inflight: set[asyncio.Task[None]] = set()

    def submit(self, key: K, item: I) -> asyncio.Future[R]:
        """Queue ``item`` for its group's next call; the future holds its own outcome."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        group = self._groups.setdefault(key, [])
        group.append((item, future))
        if len(group) >= self._max_items:
            self._start(key, self._groups.pop(key))
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._scheduled = False
        groups, self._groups = self._groups, {}
        for key, entries in groups.items():
            self._start(key, entries)

    def _start(self, key: K, entries: list[tuple[I, asyncio.Future[R]]]) -> None:
        task = asyncio.get_running_loop().create_task(self._call(key, entries))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _call(self, key: K, entries: list[tuple[I, asyncio.Future[R]]]) -> None:
        try:
            outcomes = _matched(await self._send(key, [item for item, _ in entries]), entries)
        except BaseException as exc:  # the whole call failed: every caller of it hears of it
            for _, future in entries:
                settle(future, exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), outcome in zip(entries, outcomes, strict=True):
            settle(future, outcome)


def _matched(
    outcomes: Sequence[R | BaseException], entries: Sequence[object]
) -> Sequence[R | BaseException]:
    """One outcome per item, or the call failed as a whole (a bug in ``send``)."""
    if len(outcomes) != len(entries):
        raise RuntimeError(f"{len(outcomes)} outcomes for {len(entries)} items")
    return outcomes


def settle(future: asyncio.Future[R], outcome: R | BaseException) -> None:
    """A caller that was cancelled meanwhile no longer wants its outcome."""
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
