"""Thousands of waiting HTTP clients in one asyncio process, on raw sockets.

A long-poll (``GET /v1/jobs/{id}?wait=60``) or an SSE watcher (``GET /v1/jobs/{id}/events``)
each holds one connection; the moment its answer is complete (the whole JSON body, or the
job's terminal event) is stamped with ``time.time()`` in the protocol's ``data_received``, with
no HTTP library in between: 2,000 httpx streams would cost the client more CPU than the API's
wake-ups it measures. The job's end comes from the answer itself: ``finished_at`` of the
long-poll's record, the millisecond part of the terminal event's id (both Redis time, written
by the finish script).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import cast

import orjson

TERMINAL = re.compile(rb"id: (\d+)-\d+\nevent: (?:completed|failed|cancelled|expired)\n")
REPLAYED = b"\nevent: started\n"
"""A watcher of a running job has its subscription and its replayed log once this arrives."""


@dataclass
class Answer:
    kind: str
    job_id: str
    received_s: float = 0.0
    """``time.time()`` when the answer was complete."""
    finished_ms: float = 0.0
    """The job's end as the answer tells it (Redis time, ms)."""
    error: str = ""

    @property
    def wake_ms(self) -> float:
        return self.received_s * 1000 - self.finished_ms


class Waiter(asyncio.Protocol):
    """One waiting request; ``done`` resolves with its ``Answer``, ``ready`` once it waits."""

    def __init__(self, kind: str, job_id: str, request: bytes) -> None:
        loop = asyncio.get_running_loop()
        self.answer = Answer(kind, job_id)
        self.request = request
        self.ready: asyncio.Future[None] = loop.create_future()
        self.done: asyncio.Future[Answer] = loop.create_future()
        self._buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def seen(self) -> str:
        """What arrived so far (for an error message)."""
        return f"{self.answer.kind} {self.answer.job_id}: {bytes(self._buf[:300])!r}"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is no subclass of it
        self.transport.write(self.request)
        if self.answer.kind == "poll":
            self.ready.set_result(None)  # the API answers nothing before the job's end

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self._buf += data
        if self.answer.kind == "poll":
            self._poll_data(now)
        else:
            self._sse_data(now)

    def _poll_data(self, now: float) -> None:
        head_end = self._buf.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = bytes(self._buf[:head_end]).lower()
        match = re.search(rb"content-length: *(\d+)", head)
        if match is None:
            self._finish(now, f"no content-length: {head[:80]!r}")
            return
        body = self._buf[head_end + 4 :]
        if len(body) < int(match.group(1)):
            return
        if not head.startswith(b"http/1.1 200"):
            self._finish(now, f"{head[:12].decode()} {bytes(body[:120]).decode()}")
            return
        record = orjson.loads(bytes(body))
        if record.get("finished_at") is None:
            self._finish(now, f"answered before the end: status {record.get('status')}")
            return
        self.answer.finished_ms = float(record["finished_at"]) * 1000
        self._finish(now, "")

    def _sse_data(self, now: float) -> None:
        if not self.ready.done() and REPLAYED in self._buf:
            self.ready.set_result(None)
        match = TERMINAL.search(self._buf)
        if match is not None:
            self.answer.finished_ms = float(match.group(1))
            self._finish(now, "")
        elif self._buf.startswith(b"HTTP/1.1 ") and not self._buf.startswith(b"HTTP/1.1 200"):
            self._finish(now, bytes(self._buf[:120]).decode(errors="replace"))

    def _finish(self, now: float, error: str) -> None:
        if self.done.done():
            return
        self.answer.received_s, self.answer.error = now, error
        self.done.set_result(self.answer)
        if not self.ready.done():
            self.ready.set_result(None)
        assert self.transport is not None
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self._finish(time.time(), f"connection lost: {exc!r}")


def request(kind: str, job_id: str, key: str) -> bytes:
    path = f"/v1/jobs/{job_id}?wait=60" if kind == "poll" else f"/v1/jobs/{job_id}/events"
    return (
        f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {key}\r\n"
        "accept: */*\r\n\r\n"
    ).encode()


async def open_waiters(
    port: int, jobs: list[tuple[str, str]], key: str, at_once: int = 100
) -> list[Waiter]:
    """Connect one waiter per (kind, job id), ``at_once`` connections being set up at a time
    (a burst of 2,000 SYNs would overflow the listen backlog and cost retransmits)."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(at_once)

    async def one(kind: str, job_id: str) -> Waiter:
        async with gate:
            _, waiter = await loop.create_connection(
                lambda: Waiter(kind, job_id, request(kind, job_id, key)), "127.0.0.1", port
            )
            return waiter

    return list(await asyncio.gather(*(one(kind, job_id) for kind, job_id in jobs)))
