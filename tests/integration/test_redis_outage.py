"""Redis down: requests answer 503 quickly with Retry-After, nothing hangs, and nothing that was
accepted is lost when Redis comes back (docs/operations.md#security)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.configs import config_tree
from tests.support.jobs import chat_job, submit
from tests.support.mock import MockControl
from tests.support.stack import Stack


async def test_outage_answers_503_fast_and_loses_nothing(tmp_path: Path, mock: MockControl) -> None:
    server = EmbeddedRedis(tmp_path / "redis", aof=True).start()
    stack = Stack(tmp_path, config_tree(server.url, "outage", mock_root=mock.url))
    try:
        stack.start_api()
        async with stack.client() as client:
            accepted = await submit(client, chat_job("before the outage"))
            server.stop()
            t0 = time.monotonic()
            response = await client.post("/v1/jobs", json=chat_job())
            elapsed = time.monotonic() - t0
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"
            assert response.json()["error"]["code"] == "service_unavailable"
            assert elapsed < 2.0, f"took {elapsed:.2f}s to fail"
            assert (await client.get(f"/v1/jobs/{accepted['id']}")).status_code == 503
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert (await client.get("/healthz")).status_code == 200

            server.start()
            after = await client.get(f"/v1/jobs/{accepted['id']}")
            assert after.status_code == 200
            assert after.json()["status"] == "queued"
            assert (await client.get("/readyz")).status_code == 200
            assert (await client.post("/v1/jobs", json=chat_job())).status_code == 202

            # The permanent subscriptions (the API's reply channel, the worker's wake channel)
            # come back with Redis: a synchronous call is answered through them.
            stack.start_worker()
            done = await client.get(f"/v1/jobs/{accepted['id']}", params={"wait": 10})
            assert done.json()["status"] == "succeeded"
            chat = await client.post(
                "/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "back?"}]},
            )
            assert chat.status_code == 200, chat.text

            server.stop()
            server.start()
            # the point: within half a second of a restart the subscriptions are back by
            # themselves (polling the call until it works would not show that)
            await asyncio.sleep(0.5)
            again = await client.post(
                "/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "again"}]},
            )
            assert again.status_code == 200, again.text
    finally:
        stack.stop()
        server.stop()
