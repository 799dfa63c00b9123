"""Console sessions in Redis (docs/console.md#sessions).

The browser holds a random token in an HttpOnly, SameSite=Strict cookie; Redis holds only the
token's SHA-256, so neither a dump of Redis nor a log line carries a cookie that works. A session
keeps the digest of the admin key that opened it (never the key), which every request checks
again: revoking that key ends its sessions. It ends when unused for ``idle_timeout_s`` (the
key's TTL, pushed back on each use) and ``max_age_s`` after login whatever happens.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from anygate.broker.connection import awaited
from anygate.broker.keys import KeySpace
from anygate.config import ConsoleConfig

COOKIE = "anygate_console"
"""The session cookie's name; ``__Host-`` is added when it is Secure (HTTPS), which pins it
to this host and path ``/``."""


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    actor: str
    """Who logged in, for the audit log: a key id, or ``config-admin-key``."""
    key_digest: str
    """The digest of the admin key used, checked again on every request."""
    csrf: str
    """The token every change must carry back (a form field or ``X-CSRF-Token``)."""
    created_ms: int

    def csrf_matches(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented, self.csrf)


class ConsoleSessions:
    def __init__(self, redis: Redis, keys: KeySpace, config: ConsoleConfig) -> None:
        self._redis = redis
        self._keys = keys
        self._config = config

    async def open(self, actor: str, key_digest: str) -> tuple[str, ConsoleSession]:
        """A new session: the cookie's token (returned once, never stored) and the session."""
        token = secrets.token_urlsafe(32)
        session = ConsoleSession(actor, key_digest, secrets.token_urlsafe(32), _now_ms())
        key = self._keys.console_session(token_digest(token))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "actor": actor,
                    "kd": key_digest,
                    "csrf": session.csrf,
                    "created": session.created_ms,
                },
            )
            pipe.pexpire(key, self._idle_ms)
            await pipe.execute()
        return token, session

    async def find(self, token: str | None) -> ConsoleSession | None:
        """The live session the token opens, its idle timer pushed back; None when there is
        none, it went idle, or it outlived ``max_age_s`` (then it is removed)."""
        if not token or len(token) > 128:
            return None
        key = self._keys.console_session(token_digest(token))
        h: dict[str, str] = await awaited(self._redis.hgetall(key))
        if not h or not {"actor", "kd", "csrf", "created"} <= h.keys():
            return None
        session = ConsoleSession(h["actor"], h["kd"], h["csrf"], int(h["created"]))
        if _now_ms() - session.created_ms >= self._config.max_age_s * 1000:
            await self._redis.delete(key)
            return None
        await self._redis.pexpire(key, self._idle_ms)
        return session

    async def close(self, token: str | None) -> None:
        if token and len(token) <= 128:
            await self._redis.delete(self._keys.console_session(token_digest(token)))

    async def note_failed_login(self, client: str) -> int:
        """Count a failed login from this address in the current minute; the count so far."""
        key = self._failures(client)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 120)
            count, _ = await pipe.execute()
        return int(count)

    async def failed_logins(self, client: str) -> int:
        return int(await self._redis.get(self._failures(client)) or 0)

    def _failures(self, client: str) -> str:
        """The counter of this client address's failed logins in the current minute."""
        return self._keys.console_login_failures(f"{client}:{int(time.time() // 60)}")

    @property
    def _idle_ms(self) -> int:
        return int(self._config.idle_timeout_s * 1000)


def _now_ms() -> int:
    return int(time.time() * 1000)
