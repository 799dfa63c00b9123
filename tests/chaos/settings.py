"""What the chaos stack runs with: its configuration tree, its tenants, and the two profiles
(the bounded scenario every test run includes, and the 30-minute soak).

Timings are short on purpose, so that every recovery the suite waits for happens within
seconds: a dead worker's lease lapses after ``VISIBILITY_S``, an upstream hang ends at
``PROVIDER_TIMEOUT_S``, an open breaker probes again after ``BREAKER_COOLDOWN_S``, and finished
jobs expire after ``RESULT_TTL_S``, so that the end state can be compared with the state before
the load.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TENANT_KEYS: dict[str, str] = {
    "acme": "sk-chaos-acme-0123456789",
    "globex": "sk-chaos-globex-0123456789",
    "initech": "sk-chaos-initech-0123456789",
}
TENANT_WEIGHTS = {"acme": 1, "globex": 2, "initech": 1}
MOCK_KEY_ENV = "ANYGATE_CHAOS_MOCK_KEY"

OPENAI_CHAT = "gpt-4o-mini"
GEMINI_CHAT = "gemini-2.5-flash"
EMBEDDING = "text-embedding-3-small"
CHAT_MODELS = (OPENAI_CHAT, GEMINI_CHAT)
POOL_OF_MODEL = {OPENAI_CHAT: "openai", GEMINI_CHAT: "gemini", EMBEDDING: "openai"}

PROVIDER_TIMEOUT_S = 3.0
HEARTBEAT_S = 1.0
VISIBILITY_S = 4.0
RECLAIM_S = 0.5
BREAKER_COOLDOWN_S = 3.0
ATTEMPTS_PER_DEPLOYMENT = 3
MAX_ATTEMPTS = 5
RESULT_TTL_S = 30
"""Finished jobs' records expire this long after their end (the product's minimum is lowered
for tests in ``config/model.py``); the suite waits this out before comparing Redis with its
baseline."""
BATCH_WINDOW_S = 600
"""What "24h" lasts here: a batch's line records are kept this long plus ``RESULT_TTL_S``."""
FILES_TTL_S = 3600
"""Uploaded and generated files (a batch's input, output and error files) outlive the longest
profile: the soak reads its batch's output files at its end, half an hour after the batch."""
SYNC_TIMEOUT_S = 45.0
WORKER_CONCURRENCY = 12
MOCK_CHUNKS = 8
"""The mock cuts each streamed answer into this many chunks (``--chunk-count``)."""
MOCK_CHUNK_DELAY_MS = 40.0
MOCK_LATENCY_MS = 60.0


def hash_key(key: str) -> str:
    """As the gateway stores API keys: their SHA-256 only."""
    return hashlib.sha256(key.encode()).hexdigest()


def chaos_tree(
    redis_url: str, namespace: str, mock_url: str, webhook_secret: Path
) -> dict[str, Any]:
    """The configuration every process of the chaos stack reads (one YAML file)."""
    provider = {
        "timeout_s": PROVIDER_TIMEOUT_S,
        "connect_timeout_s": 1.0,
        "api_key": f"env:{MOCK_KEY_ENV}",
    }
    return {
        "redis": {"url": redis_url, "namespace": namespace},
        "server": {"sync_timeout_s": SYNC_TIMEOUT_S},
        "providers": {
            "openai": {"kind": "openai", "base_url": f"{mock_url}/v1", **provider},
            "gemini": {"kind": "gemini", "base_url": mock_url, **provider},
        },
        # No fallbacks: a fault on one model cannot be escaped, so the suite sees whether queued
        # work waits it out.
        "models": {
            OPENAI_CHAT: {
                "deployments": [
                    {
                        "provider": "openai",
                        "model": OPENAI_CHAT,
                        "input_price_per_m": 0.15,
                        "output_price_per_m": 0.6,
                    }
                ]
            },
            GEMINI_CHAT: {
                "deployments": [
                    {
                        "provider": "gemini",
                        "model": GEMINI_CHAT,
                        "input_price_per_m": 0.3,
                        "output_price_per_m": 2.5,
                    }
                ]
            },
            EMBEDDING: {
                "kind": "embedding",
                "deployments": [{"provider": "openai", "model": EMBEDDING}],
            },
        },
        "tenants": [
            {"id": t, "weight": TENANT_WEIGHTS[t], "api_key_sha256": [hash_key(k)]}
            for t, k in TENANT_KEYS.items()
        ],
        "queue": {
            "visibility_timeout_s": VISIBILITY_S,
            "heartbeat_interval_s": HEARTBEAT_S,
            "reclaim_interval_s": RECLAIM_S,
            "max_attempts": MAX_ATTEMPTS,
            "attempts_per_deployment": ATTEMPTS_PER_DEPLOYMENT,
            "retry_base_delay_s": 0.2,
            "retry_max_delay_s": 1.0,
            "breaker": {
                "consecutive_failures": 5,
                "error_rate": 0.5,
                "min_calls": 20,
                "window_s": 10.0,
                "cooldown_s": BREAKER_COOLDOWN_S,
            },
        },
        "retention": {"result_ttl_s": RESULT_TTL_S, "idempotency_ttl_s": RESULT_TTL_S},
        "batches": {"day_s": BATCH_WINDOW_S},
        "files": {"ttl_s": FILES_TTL_S},
        "pools": {
            "openai": {"concurrency": WORKER_CONCURRENCY},
            "gemini": {"concurrency": WORKER_CONCURRENCY},
        },
        "security": {"webhook_secret": f"file:{webhook_secret}"},
    }


@dataclass(frozen=True, slots=True)
class Profile:
    """One way to run the suite: how long, how hard, and how often things break."""

    name: str
    seed: int
    soak_s: float = 0.0
    """0: one pass of the fault schedule, with the load running through it; else the load runs
    this long while a milder schedule repeats."""
    clients: dict[str, int] = field(default_factory=dict)
    """Concurrent clients per kind (``load.py`` names the kinds)."""
    batch_lines: int = 120
    pause_s: float = 10.0
    """How long Redis is stopped (SIGSTOP) in the schedule."""
    drain_s: float = 90.0
    """The longest the suite waits, after the load, for every accepted job to end."""


QUICK = Profile(
    name="quick",
    seed=1313,
    clients={
        "sync_chat": 3,
        "openai_stream": 3,
        "gemini_stream": 1,
        "submit": 3,
        "job_sse": 2,
    },
)
SOAK = Profile(
    name="soak",
    seed=1314,
    soak_s=30 * 60.0,
    clients={
        "sync_chat": 2,
        "openai_stream": 2,
        "gemini_stream": 1,
        "submit": 2,
        "job_sse": 1,
    },
    batch_lines=300,
    pause_s=5.0,
    drain_s=120.0,
)
