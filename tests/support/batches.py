"""OpenAI's Batch API as the official SDK drives it in end-to-end tests: batch input lines, the
JSONL file, an SDK pointed at a stack, waiting for a batch's status, reading a result file."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import orjson

from tests.support.configs import TENANT_KEYS
from tests.support.eventually import eventually
from tests.support.stack import Stack

MODELS = ("gpt-4o-mini", "gemini-2.5-flash")


def batch_line(i: int, model: str | None = None, **override: Any) -> dict[str, Any]:
    """Line ``i`` of a chat batch; models alternate between the two pools unless given."""
    line: dict[str, Any] = {
        "custom_id": f"req-{i}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": model or MODELS[i % 2],
            "messages": [{"role": "user", "content": f"question {i}"}],
        },
    }
    line.update(override)
    return line


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


def openai_sdk(stack: Stack) -> openai.OpenAI:
    """The official SDK as tenant ``acme``, without its own retries (the test sees every answer)."""
    return openai.OpenAI(base_url=f"{stack.url}/v1", api_key=TENANT_KEYS["acme"], max_retries=0)


async def batch_reaches(
    sdk: openai.OpenAI, batch_id: str, statuses: set[str], timeout: float
) -> Any:
    """The batch, once its status is one of ``statuses``."""

    async def probe() -> Any:
        batch = await asyncio.to_thread(sdk.batches.retrieve, batch_id)
        assert batch.status in statuses, f"batch still {batch.status}: {batch}"
        return batch

    return await eventually(
        probe, what=f"batch {batch_id} {sorted(statuses)}", timeout=timeout, interval=0.2
    )


def file_lines(sdk: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    """A result or error file's lines, parsed (none when the batch has no such file)."""
    if file_id is None:
        return []
    raw = sdk.files.content(file_id).read()
    return [orjson.loads(line) for line in raw.splitlines() if line.strip()]


def completed_lines(sdk: openai.OpenAI, batch_id: str) -> int:
    counts = sdk.batches.retrieve(batch_id).request_counts
    return counts.completed if counts else 0
