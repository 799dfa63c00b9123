"""The response cache's Redis side (docs/queue-semantics.md#cache): entries, and coalescing of
identical calls.

An entry is one string, ``cache:<sha256>``, holding the OpenAI-format result as JSON, with the
configured TTL. It is written by the API process that made the call, when the call succeeded:
workers stay unaware of the cache, and a failed job never reaches it.

Coalescing: the first caller of a cacheable request takes ``cachelead:<sha256>`` (SET NX, holding
its job id) in the same script that found no entry. Identical requests that arrive meanwhile
follow that job instead of queueing their own: they subscribe to its event channel, then read
its state (so an outcome published before the subscription is not missed), and take its result
from the ``completed`` event or the job hash. Whenever the leader's job failed, was cancelled or
expired, or never appeared (its caller failed before enqueueing), or the wait outlasts
``server.sync_timeout_s``, a follower makes its own call: a leader's failure is never served to
anyone else, and nobody waits on a leader that is gone.

Redis trouble on this path never fails a request: a read that fails is a miss, a write that
fails is logged and forgotten (the call itself then meets the same Redis and answers 503 if it
is really down).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import structlog
from redis.exceptions import RedisError
from starlette.requests import Request

from anygate.api.cache_policy import (
    HEADER,
    CacheMode,
    Render,
    cache_digest,
    cache_mode,
    cache_scope,
    cacheable,
)
from anygate.api.gateway import Gateway, gateway_of
from anygate.broker import TERMINAL_EVENTS, JobEvent, KeySpace
from anygate.broker.connection import awaited
from anygate.broker.notify import RESYNC
from anygate.telemetry import count_cache

log = structlog.get_logger(__name__)

HIT = {HEADER: "hit"}
MISS = {HEADER: "miss"}

ENQUEUE_GRACE_S = 2.0
"""A leader enqueues its job within milliseconds of taking the lead; a job still missing after
this long means its caller failed (or its process died) before enqueueing."""
CHECK_INTERVAL_S = 0.5
"""How often a follower re-reads the leader's state while no terminal event arrives."""
REDIS_ERRORS = (RedisError, OSError)  # OSError covers asyncio's and redis-py's timeouts

# KEYS: 1 entry, 2 lead marker. ARGV: 1 our job id, 2 marker TTL ms.
# Returns {'hit', entry} | {'follow', leader job id} | {'lead', ''}.
_LOOKUP = """
local entry = redis.call('GET', KEYS[1])
if entry then return {'hit', entry} end
local leader = redis.call('GET', KEYS[2])
if leader then return {'follow', leader} end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return {'lead', ''}
"""

# KEYS: 1 entry, 2 lead marker. ARGV: 1 entry value ('' = store nothing), 2 TTL s, 3 our job id.
# Stores the entry, then gives the lead up, unless another caller holds it by now.
_STORE = """
if ARGV[1] ~= '' then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1
"""


class ResponseCache:
    """One per API process (on ``app.state``), created the first time a request uses it."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.config = gw.config.cache
        self.keys = KeySpace.of(gw.config)
        self.wait_s = gw.config.server.sync_timeout_s
        self._lookup = gw.redis.register_script(_LOOKUP)
        self._store = gw.redis.register_script(_STORE)

    def entry_key(self, digest: str) -> str:
        return f"{self.keys.prefix}cache:{digest}"

    def lead_key(self, digest: str) -> str:
        return f"{self.keys.prefix}cachelead:{digest}"

    async def lookup(self, digest: str, job_id: str | None) -> tuple[str, str]:
        """``('hit', entry)``, ``('miss', '')``; with a job id (coalescing) ``('lead', '')``
        when that job now leads, or ``('follow', leader's job id)``."""
        if job_id is None:
            entry = await self.gw.redis.get(self.entry_key(digest))
            return ("hit", entry) if entry is not None else ("miss", "")
        px = max(1, int(self.wait_s * 1000))
        keys = [self.entry_key(digest), self.lead_key(digest)]
        kind, value = await self._lookup(keys=keys, args=[job_id, px])
        return str(kind), str(value)

    async def store(self, digest: str, value: bytes, leader: str | None) -> None:
        if leader is None:
            await self.gw.redis.set(self.entry_key(digest), value, ex=self.config.ttl_s)
            return
        keys = [self.entry_key(digest), self.lead_key(digest)]
        await self._store(keys=keys, args=[value, self.config.ttl_s, leader])

    async def follow(self, digest: str, leader: str) -> dict[str, Any] | None:
        """The leader's result, or None when the caller should make its own call."""
        try:
            async with self.gw.subscriptions.subscribe(self.keys.job_channel(leader)) as queue:
                return await self._await_leader(digest, leader, queue)
        except (*REDIS_ERRORS, orjson.JSONDecodeError) as exc:  # and an unconfirmed subscription
            log.warning("response cache: following a call failed", error=type(exc).__name__)
            return None

    async def _await_leader(
        self, digest: str, leader: str, queue: asyncio.Queue[str]
    ) -> dict[str, Any] | None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            waiting, result = await self._leader_state(digest, leader, loop.time() - started)
            if not waiting:
                return result
            left = self.wait_s - (loop.time() - started)
            if left <= 0:
                return None
            event = await _terminal_event(queue, min(CHECK_INTERVAL_S, left))
            if event is not None:
                if event.type != "completed":
                    return None
                await self.gw.barrier()  # strict mode: the leader's result is on disk first
                return _object(orjson.loads(event.data).get("result"))

    async def _leader_state(
        self, digest: str, leader: str, waited_s: float
    ) -> tuple[bool, dict[str, Any] | None]:
        """(keep waiting?, the answer: an entry or the leader's result; None: call upstream)."""
        job_key = self.keys.job(leader)
        async with self.gw.redis.pipeline(transaction=False) as pipe:
            pipe.get(self.entry_key(digest))
            pipe.get(self.lead_key(digest))
            pipe.hget(job_key, "status")
            entry, marker, status = await pipe.execute()
        if entry is not None:
            return False, _object(orjson.loads(entry))
        if status == "succeeded":
            result = await awaited(self.gw.redis.hget(job_key, "result"))
            return False, _object(orjson.loads(result)) if result else None
        if status is not None:
            return status in ("queued", "running"), None
        return marker == leader and waited_s < ENQUEUE_GRACE_S, None


async def _terminal_event(queue: asyncio.Queue[str], within_s: float) -> JobEvent | None:
    """The first terminal event within ``within_s`` (chunks and retries pass by), else None;
    None at once after a lost connection (the caller reads the leader's state again)."""
    try:
        async with asyncio.timeout(within_s):
            while True:
                message = await queue.get()
                if message == RESYNC:
                    return None
                event = JobEvent.from_message(message)
                if event.type in TERMINAL_EVENTS:
                    return event
    except TimeoutError:
        return None


def _object(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _cache_of(gw: Gateway, request: Request) -> ResponseCache:
    cache: ResponseCache | None = getattr(request.app.state, "response_cache", None)
    if cache is None or cache.gw is not gw:
        cache = ResponseCache(gw)
        request.app.state.response_cache = cache
    return cache


class CacheSlot:
    """The cache's part in one synchronous request: look up (and lead or follow) before the
    call, store the answer and give the lead up after it, whatever happens in between."""

    def __init__(self, cache: ResponseCache, digest: str, mode: CacheMode) -> None:
        self.cache = cache
        self.digest = digest
        self.mode = mode
        self._leading: str | None = None
        self._captured: dict[str, Any] | None = None
        self._done = False

    async def shared(self, job_id: str) -> dict[str, Any] | None:
        """An answer made without a job of our own (an entry, or a coalesced call's result);
        None: make the call ``job_id`` names (it may now lead)."""
        if self.mode is not CacheMode.USE:
            count_cache("bypass")  # refresh: call upstream whatever the cache holds
            return None
        answer = await self._lookup(job_id)
        count_cache("miss" if answer is None else "hit")
        return answer

    async def _lookup(self, job_id: str) -> dict[str, Any] | None:
        """An entry, or a coalesced call's result (a follower served without a call of its
        own counts as a hit)."""
        coalesce = self.cache.config.coalesce
        try:
            kind, value = await self.cache.lookup(self.digest, job_id if coalesce else None)
        except REDIS_ERRORS as exc:
            log.warning("response cache: lookup failed", error=type(exc).__name__)
            return None
        if kind == "hit":
            with contextlib.suppress(orjson.JSONDecodeError):
                return _object(orjson.loads(value))
            return None
        if kind == "lead":
            self._leading = job_id
        elif kind == "follow":
            return await self.cache.follow(self.digest, value)
        return None

    async def done(self, result: dict[str, Any] | None) -> None:
        """Store a successful answer (None: the call failed) and give up the lead; never raises,
        and only acts once."""
        if self._done:
            return
        self._done = True
        value = orjson.dumps(result) if result is not None else b""
        if len(value) > self.cache.config.max_entry_bytes:
            value = b""
        if not value and self._leading is None:
            return
        try:
            await self.cache.store(self.digest, value, self._leading)
        except REDIS_ERRORS as exc:
            log.warning("response cache: write failed", error=type(exc).__name__)

    def capture(self, render: Render) -> Render:
        """``render``, also keeping the result a live stream's ``completed`` event carries."""

        def capturing(event: JobEvent) -> tuple[list[bytes], bool | None]:
            if event.type == "completed":
                self._captured = _object(orjson.loads(event.data).get("result"))
            return render(event)

        return capturing

    async def storing(self, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Relay ``stream``; the answer is stored before its last bytes leave, so a caller that
        has read the end of a stream finds the entry."""
        try:
            async for piece in stream:
                if self._captured is not None:
                    await self.done(self._captured)
                yield piece
        finally:
            try:
                close = getattr(stream, "aclose", None)  # the relay's clean-up now, not at GC
                if close is not None:
                    await close()
            finally:
                # The job's answer even if its caller left before the end; else (None) only
                # the lead is given up.
                await self.done(self._captured)


def slot_for(request: Request, endpoint: str, body: dict[str, Any]) -> CacheSlot | None:
    """The request's cache slot, or None when the cache is not in play: then, as for every
    request of a model that did not opt in and sends no header, nothing is hashed or read."""
    header = request.headers.get(HEADER)
    gw = gateway_of(request)
    route = gw.config.models.get(str(body.get("model")))
    if header is None and (route is None or not route.cache):
        return None
    mode = cache_mode(header, model_opted_in=route is not None and route.cache)
    config = gw.config.cache
    if mode is CacheMode.OFF or route is None:
        if route is not None:
            count_cache("bypass")  # the caller said skip
        return None
    if not cacheable(endpoint, body, config.max_temperature):
        return None
    scope = cache_scope(request.state.tenant.id, config.scope)
    return CacheSlot(_cache_of(gw, request), cache_digest(scope, endpoint, body), mode)
