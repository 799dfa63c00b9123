"""Identifiers with enough randomness to be unguessable (docs/queue-semantics.md#retention: ≥ 122
bits)."""

from __future__ import annotations

import hashlib
import secrets


def new_job_id(shard: str = "") -> str:
    """``job_`` + 128 random bits as 22 URL-safe base64 characters: the id is stored four times
    per queued job (job and body keys, lane and index entries), so its length is memory. A job
    on a shard other than the home one carries it after a ``.`` (``keys.job_shard``), so any
    process finds the job in one hop (docs/scaling.md)."""
    random_part = secrets.token_urlsafe(16)
    return f"job_{random_part}.{shard}" if shard else f"job_{random_part}"


def new_worker_id(pool: str) -> str:
    return f"{pool}-{secrets.token_hex(6)}"


def digest(*parts: bytes | str) -> str:
    """A short stable digest: idempotency keys and request bodies are compared by it."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:32]


def new_file_id() -> str:
    """``file-`` (OpenAI's prefix) + 144 random bits as 24 URL-safe base64 characters."""
    return f"file-{secrets.token_urlsafe(18)}"
