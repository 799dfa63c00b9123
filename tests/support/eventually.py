"""The tests' one way to wait for something to happen: poll until it holds, or fail saying what
was awaited and what was last seen. A fixed sleep either waits too long or, on a loaded
machine, not long enough."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], T | Awaitable[T]],
    *,
    what: str = "",
    timeout: float = 10.0,
    interval: float = 0.02,
) -> T:
    """Call ``probe`` (sync or async) until it returns something truthy, and return that.

    An exception from ``probe`` counts as "not yet" (so a probe may ``assert``); when
    ``timeout`` passes, an ``AssertionError`` names ``what`` (default: the probe's source line)
    and the last value or exception."""
    deadline = time.monotonic() + timeout
    last: str = "never called"
    while True:
        try:
            result = probe()
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:  # reported in the assertion below
            last = f"raised {exc!r}"
        else:
            if result:
                return result  # type: ignore[return-value]
            last = f"returned {result!r}"
        if time.monotonic() >= deadline:
            awaited = what or _describe(probe)
            raise AssertionError(f"{awaited}: not within {timeout:g} s; the probe last {last}")
        await asyncio.sleep(interval)


def _describe(probe: object) -> str:
    """A lambda is best described by its source line; anything else by its name."""
    try:
        return " ".join(inspect.getsource(probe).split())  # type: ignore[arg-type]
    except (OSError, TypeError):
        return getattr(probe, "__qualname__", repr(probe))
