"""The mixed load: a fixed set of concurrent clients, spread over the tenants and both API
processes, each repeating its kind of call until told to stop.

Concurrency is bounded by the number of clients (the profile says how many of each kind); each
client's choices come from its own seeded random source.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable

from tests.chaos.calls import Client, submit_and_poll, sync_chat
from tests.chaos.journal import Journal
from tests.chaos.settings import TENANT_KEYS, Profile
from tests.chaos.streams import gemini_stream, job_sse, openai_stream

STOP_GRACE_S = 75.0
"""After the stop signal, how long clients may take to finish the call they are in."""


async def _repeat(kind: str, client: Client, stop: asyncio.Event) -> None:
    async with contextlib.AsyncExitStack() as resources:
        sdk = await resources.enter_async_context(client.sdk())
        http = await resources.enter_async_context(client.http())
        calls: dict[str, Callable[[], Awaitable[None]]] = {
            "sync_chat": lambda: sync_chat(client, sdk),
            "openai_stream": lambda: openai_stream(client, sdk),
            "gemini_stream": lambda: gemini_stream(client, http),
            "submit": lambda: submit_and_poll(client, http),
            "job_sse": lambda: job_sse(client, http),
        }
        one = calls[kind]
        while not stop.is_set():
            await one()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), client.rng.uniform(0.05, 0.3))


async def run_load(
    profile: Profile, api_urls: list[str], journal: Journal, webhook_url: str, stop: asyncio.Event
) -> None:
    """Run every client until ``stop`` is set and each has finished its current call."""
    tenants = sorted(TENANT_KEYS)
    tasks: list[asyncio.Task[None]] = []
    n = 0
    for kind, count in sorted(profile.clients.items()):
        for i in range(count):
            client = Client(
                name=f"{kind}{i}",
                tenant=tenants[n % len(tenants)],
                api=n % len(api_urls),
                base_url=api_urls[n % len(api_urls)],
                rng=random.Random(f"{profile.seed}:{kind}:{i}"),
                journal=journal,
                webhook_url=webhook_url,
            )
            tasks.append(asyncio.create_task(_repeat(kind, client, stop), name=client.name))
            n += 1
    await stop.wait()
    _done, late = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
    for task in late:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            raise RuntimeError(f"client {task.get_name()} crashed") from task.exception()
