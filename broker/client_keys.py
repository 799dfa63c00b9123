"""Client provider keys (BYOK) at rest: AES-256-GCM, bound to their job, gone when it ends.

A client's own OpenAI or Gemini key must wait in Redis with its job until a worker calls the
provider. It is sealed with the server's key (``security.encryption_key``) and the job id as
associated data, so a sealed key copied onto another job does not open. The job's terminal
transition deletes it (``retain`` in ``lua/_lib.lua``); the plain key exists only in the memory
of the API process that received it and of the worker making the call.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from anygate.config import SecurityConfig

_NONCE_BYTES = 12
_VERSION = "v1"


class ClientKeyError(Exception):
    """A sealed key that cannot be opened (another server key, or tampered with). The message
    never includes the key or the ciphertext."""


def parse_encryption_key(raw: str) -> bytes:
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        try:
            key = base64.urlsafe_b64decode(raw.strip())
        except (binascii.Error, ValueError):
            raise ValueError("security.encryption_key: not base64") from None
    if len(key) != 32:
        raise ValueError(
            f"security.encryption_key: must decode to 32 bytes (AES-256), not {len(key)}"
        )
    return key


def new_encryption_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


class ClientKeyBox:
    def __init__(self, key: bytes | None) -> None:
        self._aead = AESGCM(key) if key is not None else None

    @classmethod
    def from_config(cls, security: SecurityConfig) -> ClientKeyBox:
        ref = security.encryption_key
        return cls(parse_encryption_key(ref.resolve().get_secret_value()) if ref else None)

    @property
    def enabled(self) -> bool:
        return self._aead is not None

    def seal(self, secret: SecretStr, job_id: str) -> str:
        if self._aead is None:
            raise ClientKeyError("client provider keys need security.encryption_key")
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.get_secret_value().encode(), job_id.encode())
        return f"{_VERSION}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, sealed: str, job_id: str) -> str:
        if self._aead is None:
            raise ClientKeyError("a job carries a client key but no encryption key is set")
        unreadable = ClientKeyError("the job's client key does not open with this server key")
        version, _, payload = sealed.partition(":")
        if version != _VERSION:
            raise unreadable
        try:
            raw = base64.b64decode(payload)
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], job_id.encode())
        except (InvalidTag, ValueError, binascii.Error):
            raise unreadable from None
        return plain.decode()
