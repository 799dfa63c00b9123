"""Strict durability (``redis.durability: strict``): is the server set up for it, and the
barrier that keeps a result relayed from pub/sub from outrunning the disk.

With ``appendonly yes`` and ``appendfsync always``, Redis writes and fsyncs the AOF in
``beforeSleep()`` before it writes any client's pending replies, so a reply is never sent
before the writes it follows are on disk. anygate answers every 202 (and every other "accepted")
after the reply of the script that made the write, so strict mode needs nothing more there. One
path escapes that order: a pub/sub message reaches a subscriber whose connection already had
output waiting (over 64 KB in one event-loop turn, or a full socket) through its write handler,
which can fire in the same turn as the script that published it, before the fsync. So before
an API process tells a client a terminal state it learned from pub/sub, it waits for the reply
to one command (an ``ECHO``) sent after it read the message: that reply leaves Redis only
after an fsync covering every write made before the command was read. docs/durability.md has
the details and the Redis source behind them.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError as RedisAuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from anygate.broker.connection import awaited, create_redis
from anygate.broker.keys import KeySpace
from anygate.config import RedisConfig

log = structlog.get_logger(__name__)

Mode = Literal["standard", "strict"]

BARRIER_ECHO = "durable"
"""What the barrier's ``ECHO`` carries (any short value would do)."""

WRITE_BARRIER_FIX = (7, 0, 0)
"""Before Redis 7.0, threaded I/O wrote replies without the write barrier that keeps a reply
behind its fsync (fixed by redis/redis#9678, commit 1a7765c)."""


@dataclass(frozen=True, slots=True)
class ServerPersistence:
    """What the Redis server says about its own persistence (``CONFIG GET``, ``INFO``)."""

    version: str
    appendonly: str
    appendfsync: str
    io_threads: int
    no_fsync_on_rewrite: str = "no"
    """``no-appendfsync-on-rewrite``: ``yes`` skips every fsync while a rewrite or save runs."""

    def version_tuple(self) -> tuple[int, ...]:
        parts = []
        for part in self.version.split(".")[:3]:
            digits = re.match(r"\d*", part)
            parts.append(int(digits.group() or 0) if digits else 0)
        return tuple(parts)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether this process may run in the configured mode, and what to tell the operator."""

    ok: bool
    summary: str
    """One line for ``/readyz`` and logs."""
    problem: str = ""
    """Why it may not (or, with ``ok``, what was taken on trust): what to set, in a sentence."""


def judge(mode: Mode, persistence: ServerPersistence | None, *, assume_always: bool) -> Verdict:
    """The verdict for ``mode`` given what the server reported (None: it refused CONFIG GET)."""
    if mode == "standard":
        return Verdict(ok=True, summary="standard")
    if persistence is None:
        if assume_always:
            return Verdict(
                ok=True,
                summary="strict (unverified: the server refuses CONFIG GET)",
                problem="the Redis server refuses CONFIG GET, so appendonly/appendfsync cannot "
                "be checked; trusting redis.assume_appendfsync_always: true. If the server does "
                "not run appendonly yes with appendfsync always, acknowledged work can be lost "
                "on a power loss",
            )
        return Verdict(
            ok=False,
            summary="strict, unverified",
            problem="redis.durability is strict, but the Redis server refuses CONFIG GET, so "
            "anygate cannot check that it runs appendonly yes with appendfsync always. Make "
            "sure it does (on managed Redis: its AOF setting 'always' / 'every write'), then set "
            "redis.assume_appendfsync_always: true; or set redis.durability: standard",
        )
    wrong = []
    if persistence.appendonly != "yes":
        wrong.append(f"appendonly {persistence.appendonly}")
    if persistence.appendfsync != "always":
        wrong.append(f"appendfsync {persistence.appendfsync}")
    if persistence.no_fsync_on_rewrite != "no":
        wrong.append(f"no-appendfsync-on-rewrite {persistence.no_fsync_on_rewrite}")
    if wrong:
        return Verdict(
            ok=False,
            summary=f"strict, but the server runs {', '.join(wrong)}",
            problem=f"redis.durability is strict, but the Redis server runs {' and '.join(wrong)}"
            ". Set appendonly yes, appendfsync always and no-appendfsync-on-rewrite no in its "
            "redis.conf (or at run time with CONFIG SET, then CONFIG REWRITE), or set "
            "redis.durability: standard",
        )
    if persistence.io_threads > 1 and persistence.version_tuple() < WRITE_BARRIER_FIX:
        return Verdict(
            ok=False,
            summary=f"strict, but Redis {persistence.version} runs io-threads "
            f"{persistence.io_threads}",
            problem=f"redis.durability is strict, but Redis {persistence.version} with "
            f"io-threads {persistence.io_threads} can send a reply before its fsync (fixed in "
            "Redis 7.0). Set io-threads 1 or upgrade Redis, or set redis.durability: standard",
        )
    return Verdict(ok=True, summary="strict (appendonly yes, appendfsync always)")


async def server_persistence(redis: Redis) -> ServerPersistence | None:
    """Ask the server; None when it refuses ``CONFIG`` (renamed, disabled, or an ACL denies it).
    Redis 6.2 takes one parameter per ``CONFIG GET``, hence one call each."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.info("server")
        for name in ("appendonly", "appendfsync", "io-threads", "no-appendfsync-on-rewrite"):
            pipe.config_get(name)
        info, *configs = await pipe.execute(raise_on_error=False)
    for reply in (info, *configs):
        if isinstance(reply, Exception) and not isinstance(reply, ResponseError):
            raise reply
    if any(isinstance(reply, ResponseError) for reply in configs):
        return None
    found: dict[str, Any] = {}
    for reply in configs:
        found.update(reply)
    if "appendonly" not in found or "appendfsync" not in found:
        return None  # a Redis-compatible server that does not say: as good as refused
    version = "unknown" if isinstance(info, Exception) else str(info.get("redis_version", "0"))
    return ServerPersistence(
        version=version,
        appendonly=str(found.get("appendonly", "")),
        appendfsync=str(found.get("appendfsync", "")),
        io_threads=int(found.get("io-threads", 1) or 1),
        no_fsync_on_rewrite=str(found.get("no-appendfsync-on-rewrite", "no")),
    )


async def check_durability(redis: Redis, mode: Mode, *, assume_always: bool) -> Verdict:
    """The verdict for this server now; standard mode asks Redis nothing."""
    if mode == "standard":
        return judge(mode, None, assume_always=assume_always)
    return judge(mode, await server_persistence(redis), assume_always=assume_always)


class ReplicasBehindError(RedisError):
    """Fewer replicas than ``redis.min_replicas_acked`` confirmed the writes an
    acknowledgement depends on within ``redis.replicas_ack_timeout_s``: nothing is claimed
    (a Redis error, so the API answers 503 as for any other)."""


class DurabilityBarrier:
    """``await barrier()`` before telling a client something it may rely on: in strict mode it
    returns once Redis has fsynced every write made before the call, and, with
    ``replicas`` > 0, once that many replicas have received them (one round trip, shared by
    every caller of the same loop turn); in standard mode at once. Terminal states read from
    pub/sub always go through it; with replicas, every acknowledgement does
    (``api/replication_wait.py``).

    Without replicas the round trip is an ``ECHO``: as cheap as a ``PING``, but a command of
    its own, so that ``INFO commandstats`` counts barriers (``cmdstat_echo``) apart from
    redis-py's connection health checks. With replicas it is a ``PUBLISH`` (a write that is
    replicated, to a channel nobody listens on, leaving no key behind) followed by ``WAIT`` on
    the same connection: ``WAIT`` waits for the replicas to reach that connection's own last
    write, and the ``PUBLISH`` was read after every write the caller depends on, so its
    replication offset covers them all."""

    def __init__(
        self,
        redis: Redis,
        mode: Mode,
        *,
        replicas: int = 0,
        replicas_timeout_s: float = 1.0,
        channel: str = "anygate:durable",
    ) -> None:
        self._redis = redis
        self.strict = mode == "strict"
        self.replicas = replicas if self.strict else 0
        self._wait_ms = max(1, round(replicas_timeout_s * 1000))
        self._channel = channel
        self._next: asyncio.Future[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    async def __call__(self) -> None:
        if not self.strict:
            return
        pending = self._next
        if pending is None:
            loop = asyncio.get_running_loop()
            pending = self._next = loop.create_future()
            pending.add_done_callback(_retrieve)
            loop.call_soon(self._send, pending)
        await asyncio.shield(pending)

    def _send(self, pending: asyncio.Future[None]) -> None:
        # From here on a caller needs a round trip sent after its own call: the next one.
        self._next = None
        task = asyncio.get_running_loop().create_task(self._round_trip(pending))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _round_trip(self, pending: asyncio.Future[None]) -> None:
        try:
            if self.replicas:
                await self._replicated()
            else:
                await awaited(self._redis.echo(BARRIER_ECHO))
        except Exception as exc:  # every waiter hears of it: nothing is confirmed durable
            if not pending.done():
                pending.set_exception(exc)
        else:
            if not pending.done():
                pending.set_result(None)

    async def _replicated(self) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.publish(self._channel, BARRIER_ECHO)
            pipe.execute_command("WAIT", self.replicas, self._wait_ms)
            _, acked = await pipe.execute()
        if int(acked) < self.replicas:
            raise ReplicasBehindError(
                f"{acked} of the {self.replicas} replica(s) required by "
                f"redis.min_replicas_acked confirmed the write within {self._wait_ms} ms"
            )


def barrier_for(redis: Redis, config: RedisConfig) -> DurabilityBarrier:
    """The barrier ``config`` asks for (strict or not, how many replicas, how long)."""
    return DurabilityBarrier(
        redis,
        config.durability,
        replicas=config.replicas_to_ack(),
        replicas_timeout_s=config.replicas_ack_timeout_s,
        channel=f"{KeySpace(config.namespace).prefix}durable",
    )


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark an exception as seen even when every waiter was cancelled meanwhile."""
    if not future.cancelled():
        future.exception()


async def startup_verdict(config: RedisConfig) -> Verdict:
    """The verdict a process starts on; while Redis cannot be reached (not up yet, loading its
    AOF after a restart) it waits and says so, as every process does for a transient error."""
    if config.durability == "standard":
        return judge("standard", None, assume_always=config.assume_appendfsync_always)
    redis = create_redis(config)
    delay = 0.2
    try:
        while True:
            try:
                return await check_durability(
                    redis, config.durability, assume_always=config.assume_appendfsync_always
                )
            except RedisAuthenticationError:
                raise  # a wrong password does not fix itself
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("waiting for Redis to check its durability", error=type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
    finally:
        await redis.aclose()
