"""A client load that writes down every acknowledgement it receives, then checks what survived.

Submitters post ``/v1/jobs`` and note each 202; watchers long-poll those jobs, an SSE reader
follows some, and synchronous callers post ``/v1/chat/completions``; every terminal state any of
them saw is noted with the answer's id (the mock provider makes a new one per call, so a job
that ran again shows a different result). Errors (503s, refused connections while Redis is
away) are expected and simply not noted: only what the gateway acknowledged counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

TERMINAL = {"succeeded", "failed", "cancelled", "expired"}
SSE_TERMINAL = {
    "completed": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
    "expired": "expired",
}


def _chat(text: str) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}


def _answer_id(job: dict[str, Any]) -> str:
    result = job.get("result") or {}
    error = job.get("error") or {}
    return str(result.get("id") or error.get("code") or "")


@dataclass
class Ledger:
    accepted: dict[str, float] = field(default_factory=dict)
    """job id → monotonic time its 202 arrived"""
    terminal: dict[str, tuple[str, str, float]] = field(default_factory=dict)
    """job id → (status, answer id, monotonic time first seen)"""
    errors: int = 0

    def saw_terminal(self, job_id: str, status: str, answer: str) -> None:
        self.terminal.setdefault(job_id, (status, answer, time.monotonic()))


@dataclass
class Loss:
    missing: dict[str, float]
    """acknowledged jobs the gateway no longer knows: job id → age of the 202 at the plug (s)"""
    changed: dict[str, str]
    """jobs seen terminal that are now something else: job id → what they are now"""
    changed_age: dict[str, float]

    @property
    def count(self) -> int:
        return len(self.missing) + len(self.changed)

    def oldest_s(self) -> float:
        """How long before the plug the oldest lost acknowledgement was sent (0: none lost)."""
        return max([*self.missing.values(), *self.changed_age.values(), 0.0])


class Load:
    def __init__(self, client: httpx.AsyncClient, *, submitters: int = 4, callers: int = 2) -> None:
        self.client = client
        self.ledger = Ledger()
        self._ids: asyncio.Queue[str] = asyncio.Queue()
        self._stop = asyncio.Event()
        self._counter = itertools.count()
        self._tasks = [asyncio.create_task(self._submit()) for _ in range(submitters)]
        self._tasks += [asyncio.create_task(self._watch()) for _ in range(submitters)]
        self._tasks += [asyncio.create_task(self._call()) for _ in range(callers)]
        self._tasks.append(asyncio.create_task(self._follow()))

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _guarded(self, request: Any) -> httpx.Response | None:
        try:
            response: httpx.Response = await request
        except httpx.HTTPError:
            self.ledger.errors += 1
            await asyncio.sleep(0.05)
            return None
        if response.status_code >= 500:
            self.ledger.errors += 1
            await asyncio.sleep(0.05)
        return response

    async def _submit(self) -> None:
        while not self._stop.is_set():
            body = {"endpoint": "/v1/chat/completions", "body": _chat(f"job {next(self._counter)}")}
            response = await self._guarded(self.client.post("/v1/jobs", json=body))
            if response is not None and response.status_code == 202:
                job_id = response.json()["id"]
                self.ledger.accepted[job_id] = time.monotonic()
                self._ids.put_nowait(job_id)
            await asyncio.sleep(0.002)

    async def _watch(self) -> None:
        while True:
            job_id = await self._ids.get()
            response = await self._guarded(self.client.get(f"/v1/jobs/{job_id}?wait=2"))
            if response is None or response.status_code != 200:
                self._ids.put_nowait(job_id)
                continue
            job = response.json()
            if job["status"] in TERMINAL:
                self.ledger.saw_terminal(job_id, job["status"], _answer_id(job))
            else:
                self._ids.put_nowait(job_id)

    async def _call(self) -> None:
        while not self._stop.is_set():
            body = _chat(f"call {next(self._counter)}")
            response = await self._guarded(self.client.post("/v1/chat/completions", json=body))
            if response is not None and response.status_code == 200:
                job_id = response.headers["x-anygate-job-id"]
                self.ledger.saw_terminal(job_id, "succeeded", response.json()["id"])

    async def _follow(self) -> None:
        """One SSE reader: each new job's events until its end, as a browser would."""
        while not self._stop.is_set():
            body = {"endpoint": "/v1/chat/completions", "body": _chat("followed")}
            response = await self._guarded(self.client.post("/v1/jobs", json=body))
            if response is None or response.status_code != 202:
                continue
            job_id = response.json()["id"]
            self.ledger.accepted[job_id] = time.monotonic()
            with contextlib.suppress(httpx.HTTPError):
                async with self.client.stream("GET", f"/v1/jobs/{job_id}/events") as events:
                    kind = ""
                    async for line in events.aiter_lines():
                        if line.startswith("event: "):
                            kind = line.removeprefix("event: ")
                        elif line.startswith("data: ") and kind in SSE_TERMINAL:
                            data = orjson.loads(line.removeprefix("data: "))
                            answer = _answer_id(data)
                            self.ledger.saw_terminal(job_id, SSE_TERMINAL[kind], answer)
                            break
            self._ids.put_nowait(job_id)  # the watchers see it through too


async def current_state(client: httpx.AsyncClient, job_ids: list[str]) -> dict[str, Any]:
    """Each job as the gateway knows it now (None: 404), read 32 at a time."""
    found: dict[str, Any] = {}
    for start in range(0, len(job_ids), 32):
        batch = job_ids[start : start + 32]
        replies = await asyncio.gather(*(client.get(f"/v1/jobs/{j}") for j in batch))
        for job_id, response in zip(batch, replies, strict=True):
            assert response.status_code in (200, 404), response.text
            found[job_id] = response.json() if response.status_code == 200 else None
    return found


def reconcile(ledger: Ledger, now: dict[str, Any], plug_at: float) -> Loss:
    """What the gateway lost of what it had acknowledged."""
    missing = {j: plug_at - t for j, t in ledger.accepted.items() if now.get(j) is None}
    changed: dict[str, str] = {}
    changed_age: dict[str, float] = {}
    for job_id, (status, answer, seen_at) in ledger.terminal.items():
        job = now.get(job_id)
        if job is None:
            if job_id not in missing:
                missing[job_id] = plug_at - seen_at
            continue
        if (job["status"], _answer_id(job)) != (status, answer):
            changed[job_id] = f"{job['status']} {_answer_id(job)} (was {status} {answer})"
            changed_age[job_id] = plug_at - seen_at
    return Loss(missing, changed, changed_age)


async def settle(client: httpx.AsyncClient, job_ids: list[str], timeout: float) -> dict[str, Any]:
    """Wait until every job that still exists is terminal (lost leases are redelivered)."""
    deadline = time.monotonic() + timeout
    while True:
        now = await current_state(client, job_ids)
        open_jobs = [
            j for j, job in now.items() if job is not None and job["status"] not in TERMINAL
        ]
        if not open_jobs or time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.2)
