"""Clients that ask and wait: synchronous chat through the official OpenAI SDK, and job submits
(some idempotent with a deadline, some with a webhook) followed by long-polls.

Each records what it was told in the journal; none ever raises, so one client's surprise cannot
end the load. Every call is bounded by a client timeout; reaching it is recorded as ``timeout``
(a hang, which the reconciliation reports).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx
import openai

from anygate.ops.mock_provider.common import reply_text
from tests.chaos.journal import Call, Journal
from tests.chaos.settings import CHAT_MODELS, EMBEDDING, MOCK_CHUNKS, TENANT_KEYS

QUICK_TIMEOUT = httpx.Timeout(10.0, connect=2.0)
"""A call that should be answered at once (submit, poll, upload)."""
WAIT_TIMEOUT_S = 60.0
"""A call that may wait for its job (synchronous chat, streams, long-polls)."""
LONG_POLL_S = 5
TERMINAL = frozenset({"succeeded", "failed", "cancelled", "expired"})


def expected_text(prompt: str) -> str:
    """What the mock answers to ``prompt`` (it echoes it), whichever provider serves it."""
    return reply_text(prompt, variant=0, chunk_count=MOCK_CHUNKS)


@dataclass
class Client:
    """One simulated client: its tenant, the API it talks to, its own random source."""

    name: str
    tenant: str
    api: int
    base_url: str
    rng: random.Random
    journal: Journal
    webhook_url: str
    n: int = 0

    def prompt(self, kind: str) -> str:
        self.n += 1
        return f"chaos {kind} {self.name}-{self.n}"

    @property
    def key(self) -> str:
        return TENANT_KEYS[self.tenant]

    def http(self, timeout: httpx.Timeout = QUICK_TIMEOUT) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            headers={"authorization": f"Bearer {self.key}"},
        )

    def sdk(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=f"{self.base_url}/v1",
            api_key=self.key,
            max_retries=0,
            timeout=WAIT_TIMEOUT_S,
        )


def note_response(call: Call, response: Any, journal: Journal) -> None:
    """Status, job id header, error code and Retry-After of any response (httpx or SDK)."""
    call.status = response.status_code
    headers = response.headers
    call.job_id = headers.get("x-anygate-job-id") or call.job_id
    journal.learn(call.job_id, "header")
    call.retry_after = headers.get("retry-after")
    if response.status_code >= 400:
        call.outcome = "http_error"
        try:
            error = response.json().get("error") or {}
            call.code = error.get("code") if isinstance(error, dict) else None
            call.detail = str(error.get("message", ""))[:200] if isinstance(error, dict) else ""
        except Exception:
            call.detail = response.text[:200] if hasattr(response, "text") else ""


def note_exception(call: Call, exc: BaseException) -> None:
    timeouts = (httpx.TimeoutException, openai.APITimeoutError, TimeoutError)
    call.outcome = "timeout" if isinstance(exc, timeouts) else "connect_error"
    if isinstance(exc, openai.APIError) and not isinstance(exc, openai.APIConnectionError):
        call.outcome = "stream_error"
    call.detail = f"{type(exc).__name__}: {exc}"[:200]


async def sync_chat(client: Client, sdk: openai.AsyncOpenAI) -> None:
    """One non-streamed chat (or, one time in five, an embedding) through the SDK."""
    journal = client.journal
    call = journal.call("sync_chat", client.api)
    embed = client.rng.random() < 0.2
    prompt = client.prompt("sync")
    try:
        if embed:
            raw: Any = await sdk.embeddings.with_raw_response.create(model=EMBEDDING, input=prompt)
        else:
            raw = await sdk.chat.completions.with_raw_response.create(
                model=client.rng.choice(CHAT_MODELS),
                messages=[{"role": "user", "content": prompt}],
            )
        note_response(call, raw, journal)
        if not embed:
            text = raw.parse().choices[0].message.content or ""
            journal.sync_results.append((call.job_id or "", expected_text(prompt), text))
    except openai.APIStatusError as exc:
        note_response(call, exc.response, journal)
    except Exception as exc:
        note_exception(call, exc)
    finally:
        call.ended = time.time()


def submit_body(client: Client, prompt: str) -> dict[str, Any]:
    if client.rng.random() < 0.2:
        return {"endpoint": "/v1/embeddings", "body": {"model": EMBEDDING, "input": prompt}}
    model = client.rng.choice(CHAT_MODELS)
    return {
        "endpoint": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": prompt}]},
    }


async def submit(
    client: Client, http: httpx.AsyncClient, spec: dict[str, Any], *, idempotent: bool = False
) -> str | None:
    """POST /v1/jobs; an idempotent submit is retried with the same key until it is answered
    (that is what the key is for: a retry after an error can never make a second job)."""
    headers = {"idempotency-key": f"chaos-{client.name}-{client.n}"} if idempotent else {}
    for _ in range(4 if idempotent else 1):
        call = client.journal.call("submit", client.api)
        try:
            response = await http.post("/v1/jobs", json=spec, headers=headers)
            note_response(call, response, client.journal)
            if response.status_code == 202:
                call.job_id = response.json()["id"]
                client.journal.learn(call.job_id, "202")
                return call.job_id
        except Exception as exc:
            note_exception(call, exc)
        finally:
            call.ended = time.time()
        await asyncio.sleep(1.0)
    return None


async def poll(client: Client, http: httpx.AsyncClient, job_id: str, *, give_up_s: float) -> None:
    """Long-poll until the job ends (or a plain poll, now and then); bounded by ``give_up_s``."""
    deadline = time.monotonic() + give_up_s
    while time.monotonic() < deadline:
        plain = client.rng.random() < 0.2
        call = client.journal.call("poll" if plain else "poll_wait", client.api)
        params = {} if plain else {"wait": LONG_POLL_S}
        try:
            response = await http.get(
                f"/v1/jobs/{job_id}",
                params=params,
                timeout=httpx.Timeout(LONG_POLL_S + 10, connect=2),
            )
            note_response(call, response, client.journal)
            if response.status_code == 200 and response.json()["status"] in TERMINAL:
                return
            if response.status_code == 404:
                return  # expired already: the collector has its record
        except Exception as exc:
            note_exception(call, exc)
        finally:
            call.ended = time.time()
        await asyncio.sleep(0.5 if plain else 0.2)


async def submit_and_poll(client: Client, http: httpx.AsyncClient) -> None:
    """A few submits of mixed kinds, then wait for each."""
    ids: list[str] = []
    for _ in range(client.rng.randint(1, 4)):
        spec = submit_body(client, client.prompt("job"))
        roll = client.rng.random()
        if roll < 0.25:
            spec["deadline"] = time.time() + 300
            job_id = await submit(client, http, spec, idempotent=True)
        elif roll < 0.45:
            spec["webhook_url"] = client.webhook_url
            job_id = await submit(client, http, spec)
            if job_id:
                client.journal.webhook_jobs.add(job_id)
        else:
            spec["priority"] = client.rng.choice(["standard", "standard", "batch"])
            job_id = await submit(client, http, spec)
        if job_id:
            ids.append(job_id)
    for job_id in ids:
        await poll(client, http, job_id, give_up_s=WAIT_TIMEOUT_S)
