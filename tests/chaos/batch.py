"""One batch through ``/v1/files`` + ``/v1/batches``, started with the load and collected after
it: the input's ``custom_id``s are what the output and error files must hold, each once."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from tests.chaos.calls import QUICK_TIMEOUT, expected_text
from tests.chaos.settings import CHAT_MODELS, TENANT_KEYS

BATCH_TENANT = "globex"
BAD_LINES = 2
"""Lines naming a model the gateway does not serve: identifiable, so they go to the error file."""
FINAL = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass
class BatchRun:
    base_url: str
    lines: int
    batch_id: str = ""
    expected: dict[str, str] = field(default_factory=dict)
    """custom_id -> the answer the mock gives its prompt ('' for the bad lines)."""
    status: str = ""
    counts: dict[str, Any] = field(default_factory=dict)
    output: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url,
            timeout=QUICK_TIMEOUT,
            headers={"authorization": f"Bearer {TENANT_KEYS[BATCH_TENANT]}"},
        )

    def input_file(self) -> bytes:
        out = []
        for i in range(self.lines + BAD_LINES):
            custom_id, prompt = f"line-{i}", f"chaos batch line {i}"
            model = CHAT_MODELS[i % 2] if i < self.lines else "no-such-model"
            self.expected[custom_id] = expected_text(prompt) if i < self.lines else ""
            out.append(
                orjson.dumps(
                    {
                        "custom_id": custom_id,
                        "method": "POST",
                        "url": "/v1/chat/completions",
                        "body": {"model": model, "messages": [{"role": "user", "content": prompt}]},
                    }
                )
            )
        return b"\n".join(out) + b"\n"


async def _retrying(what: str, run: BatchRun, action: Any, give_up_s: float = 60.0) -> Any:
    """Retry a call that must succeed for the batch to exist; give up after ``give_up_s``."""
    deadline = time.monotonic() + give_up_s
    while True:
        try:
            response: httpx.Response = await action()
            if response.status_code == 200:
                return response.json()
            last = f"HTTP {response.status_code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        if time.monotonic() > deadline:
            run.problems.append(f"{what} never succeeded: {last}")
            return None
        await asyncio.sleep(1.0)


async def start_batch(run: BatchRun, webhook_url: str) -> None:
    async with run.http() as http:
        data = run.input_file()
        uploaded = await _retrying(
            "upload",
            run,
            lambda: http.post(
                "/v1/files",
                files={"file": ("chaos.jsonl", data, "application/jsonl")},
                data={"purpose": "batch"},
            ),
        )
        if uploaded is None:
            return
        created = await _retrying(
            "batch create",
            run,
            lambda: http.post(
                "/v1/batches",
                json={
                    "input_file_id": uploaded["id"],
                    "endpoint": "/v1/chat/completions",
                    "completion_window": "24h",
                    "webhook_url": webhook_url,
                },
            ),
        )
        if created is not None:
            run.batch_id = created["id"]


async def finish_batch(run: BatchRun, give_up_s: float) -> None:
    """Wait (bounded) for the batch to end, then read its output and error files."""
    if not run.batch_id:
        return
    deadline = time.monotonic() + give_up_s
    async with run.http() as http:
        while time.monotonic() < deadline:
            try:
                response = await http.get(f"/v1/batches/{run.batch_id}")
                if response.status_code == 200:
                    batch = response.json()
                    run.status, run.counts = batch["status"], batch.get("request_counts") or {}
                    if run.status in FINAL:
                        run.output = await _lines(http, batch.get("output_file_id"))
                        run.errors = await _lines(http, batch.get("error_file_id"))
                        return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(1.0)
    run.problems.append(f"batch {run.batch_id} still {run.status!r} after {give_up_s:.0f}s")


async def _lines(http: httpx.AsyncClient, file_id: str | None) -> list[dict[str, Any]]:
    if not file_id:
        return []
    response = await http.get(f"/v1/files/{file_id}/content")
    response.raise_for_status()
    return [orjson.loads(line) for line in response.content.splitlines() if line.strip()]
