"""Both Python clients behind one interface, so one test body checks ``Client`` and
``AsyncClient`` alike: the synchronous one runs its real code (``httpx.Client``, ``time.sleep``)
in a worker thread, each call awaited, each iterator stepped there."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from anygate.client import AsyncClient, Client, _async, _sync

KINDS = ("async", "sync")
_END = object()


async def _in_thread(iterator: Iterator[Any]) -> AsyncIterator[Any]:
    try:
        while (item := await asyncio.to_thread(next, iterator, _END)) is not _END:
            yield item
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            await asyncio.to_thread(close)


class ThreadedClient:
    """A ``Client`` whose methods are awaited (and iterators async-iterated) like
    ``AsyncClient``'s."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.client, name)
        if inspect.isgeneratorfunction(getattr(Client, name)):
            return lambda *args, **kwargs: _in_thread(method(*args, **kwargs))

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(method, *args, **kwargs)

        return call


@contextlib.asynccontextmanager
async def open_client(kind: str, base_url: str, api_key: str, **options: Any) -> AsyncIterator[Any]:
    """An ``AsyncClient`` (``kind`` "async") or a threaded ``Client`` ("sync")."""
    if kind == "async":
        async with AsyncClient(base_url, api_key, **options) as client:
            yield client
        return
    sync = Client(base_url, api_key, **options)
    try:
        yield ThreadedClient(sync)
    finally:
        await asyncio.to_thread(sync.close)


def record_pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses either client takes between tries, recorded instead of slept."""
    pauses: list[float] = []

    async def async_pause(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr(_async, "_pause", async_pause)
    monkeypatch.setattr(_sync, "_pause", pauses.append)
    return pauses
