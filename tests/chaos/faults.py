"""Act the schedule out against the running stack and mock, and keep the stack's processes up.

``FaultRunner`` performs each step (kill and restart a process, stop or pause Redis, make the
mock misbehave for one model) and records the window in which the fault held. ``Supervisor``
plays the part of a restart policy: a process that died without being killed is noted (a
finding: no process may exit on a transient fault) and started again, so the rest of the run
still measures everything else. Both share one lock, so a slot is never started twice at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.chaos.schedule import STORM_RETRY_AFTER_S, Fault, Step, Window
from tests.chaos.stack import ChaosStack, Exit

SUPERVISE_EVERY_S = 1.0
DROP_AFTER_CHUNKS = 2


def mock_rule(step: Step) -> dict[str, Any]:
    """The mock's fault rule for an upstream step (``ops/mock_provider/faults.py``)."""
    rules: dict[Fault, dict[str, Any]] = {
        Fault.STORM_429: {"fault": "429", "retry_after": STORM_RETRY_AFTER_S},
        Fault.BURST_5XX: {"fault": "503"},
        Fault.HANGS: {"fault": "hang", "times": step.count},
        Fault.DROPS: {"fault": "drop", "times": step.count, "after_chunks": DROP_AFTER_CHUNKS},
    }
    return {**rules[step.fault], "model": step.target}


@dataclass
class Notes:
    """What the harness itself saw go wrong (restarts that failed, processes that died)."""

    exits: list[Exit] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class FaultRunner:
    def __init__(self, stack: ChaosStack, lock: asyncio.Lock, notes: Notes) -> None:
        self._stack = stack
        self._lock = lock
        self._notes = notes
        self.windows: list[Window] = []

    async def run(self, steps: list[Step], stop: asyncio.Event | None = None) -> list[Window]:
        async with httpx.AsyncClient(base_url=self._stack.mock_url, timeout=5) as mock:
            for step in steps:
                if stop is not None and stop.is_set():
                    break
                await asyncio.sleep(step.gap_s)
                start = time.time()
                slot = self._stack.slots.get(step.target)
                victim = slot.worker_id if slot is not None else ""
                try:
                    await self._act(step, mock)
                finally:
                    self.windows.append(Window(step.fault, step.target, start, time.time(), victim))
        return self.windows

    async def _act(self, step: Step, mock: httpx.AsyncClient) -> None:
        stack = self._stack
        if step.fault.upstream:
            (await mock.post("/_mock/faults", json=[mock_rule(step)])).raise_for_status()
            try:
                await asyncio.sleep(step.length_s)
            finally:
                (await mock.delete("/_mock/faults")).raise_for_status()
        elif step.fault is Fault.REDIS_PAUSE:
            stack.pause_redis()
            try:
                await asyncio.sleep(step.length_s)
            finally:
                stack.resume_redis()  # always, or the whole stack stays frozen
        elif step.fault.redis:
            await asyncio.to_thread(stack.stop_redis, hard=step.fault is Fault.REDIS_KILL)
            await asyncio.sleep(step.length_s)
            await asyncio.to_thread(stack.start_redis)
        else:
            async with self._lock:
                await asyncio.to_thread(stack.kill_slot, step.target)
            await asyncio.sleep(step.length_s)
            async with self._lock:
                try:
                    await asyncio.to_thread(stack.start_slot, step.target)
                except RuntimeError as exc:
                    self._notes.problems.append(f"restart of {step.target} failed: {exc}")


class Supervisor:
    """Every second: restart what died on its own (without waiting for it to be ready)."""

    def __init__(self, stack: ChaosStack, lock: asyncio.Lock, notes: Notes) -> None:
        self._stack = stack
        self._lock = lock
        self._notes = notes

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SUPERVISE_EVERY_S)
            async with self._lock:
                for gone in await asyncio.to_thread(self._stack.exited):
                    self._notes.exits.append(gone)
                    if stop.is_set():
                        continue
                    try:
                        await asyncio.to_thread(self._stack.start_slot, gone.slot, wait=False)
                    except RuntimeError as exc:
                        self._notes.problems.append(f"supervisor restart of {gone.slot}: {exc}")
