"""Identifiers with enough randomness to be unguessable (SPEC §2: ≥ 122 bits)."""

from __future__ import annotations

import base64
import hashlib
import secrets


def new_job_id() -> str:
    """``job_`` + 128 random bits in lower-case base32 (26 characters)."""
    raw = base64.b32encode(secrets.token_bytes(16)).decode("ascii").rstrip("=").lower()
    return f"job_{raw}"


def new_worker_id(pool: str) -> str:
    return f"{pool}-{secrets.token_hex(6)}"


def digest(*parts: bytes | str) -> str:
    """A short stable digest: idempotency keys and request bodies are compared by it."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:32]
