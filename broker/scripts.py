"""Loading the Lua scripts and calling them: the mechanics under the typed calls of
``script_calls`` (which say what goes in and what comes back).

A script's file is named for its key count (``claim-13.lua``, as BullMQ does); the wrapper checks
that count, so a caller cannot hand a script fewer keys than it declares. Scripts are called by SHA
through the client's auto-pipeline, which sends the source again on NOSCRIPT (after a restart).

A worker binds them with its ``RedisLink``: then every script that is safe to run twice waits
out a Redis outage (``RedisLink.retry``) instead of failing the job it serves. ``claim`` is not
among them: a claim retried blindly would take more jobs; the worker repeats it with the same
claim token instead (``claim-13.lua``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Protocol

from redis.asyncio import Redis

from anygate.broker.pipelining import AutoPipeline
from anygate.broker.redis_link import RedisLink, is_outage

_LUA = resources.files("anygate.broker") / "lua"

Arg = str | bytes | int | float


class ScriptKeys(Protocol):
    """A script's KEYS, as a small frozen dataclass (``script_calls``): one field per key."""

    def keys(self) -> list[str]: ...


class ScriptArgs(Protocol):
    """A script's ARGV, as a small frozen dataclass that encodes its fields in order."""

    def argv(self) -> list[Arg]: ...


@dataclass(frozen=True, slots=True)
class LuaScript:
    name: str
    key_count: int
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())  # noqa: S324 - Redis names scripts by SHA-1

    def bind(self, pipeline: AutoPipeline, link: RedisLink | None = None) -> BoundScript:
        return BoundScript(self, pipeline, link)


class BoundScript:
    """A script bound to one client's auto-pipeline; with a ``link``, it waits out Redis
    outages rather than raising."""

    __slots__ = ("_link", "_pipeline", "spec")

    def __init__(
        self, spec: LuaScript, pipeline: AutoPipeline, link: RedisLink | None = None
    ) -> None:
        self.spec = spec
        self._pipeline = pipeline
        self._link = link

    async def __call__(
        self,
        keys: Sequence[str],
        args: Sequence[Arg],
        check: Callable[[Any], Any] | None = None,
    ) -> Any:
        """The reply's shape is documented in the script's .lua header. ``check``: the reply as
        the caller reads it, or an error it finds inside (one job's error of a call carrying
        several), which counts as the call's own: an outage is waited out like the call's.

        With a link, the first try goes straight to Redis: ``RedisLink.retry`` (tenacity) costs
        a worker a visible share of its CPU per call, and is only needed once a call failed."""
        if len(keys) != self.spec.key_count:
            raise ValueError(f"{self.spec.name} takes {self.spec.key_count} keys, got {len(keys)}")

        async def once() -> Any:
            reply = await self._pipeline.evalsha(self.spec.sha, self.spec.source, keys, args)
            return reply if check is None else check(reply)

        if self._link is None:
            return await once()
        try:
            reply = await once()
        except Exception as exc:
            if not is_outage(exc):
                raise
            self._link.lost(exc)  # counted and logged as retry() reports one
        else:
            self._link.back()
            return reply
        return await self._link.retry(once)

    async def call(self, keys: ScriptKeys, args: ScriptArgs) -> Any:
        """The typed wrappers' way in (``script_calls``); the reply is theirs to decode."""
        return await self(keys.keys(), args.argv())


def _load(name: str) -> LuaScript:
    """Prepend the shared prelude; the key count is part of the file name."""
    prelude = (_LUA / "_lib.lua").read_text(encoding="utf-8")
    matches = [p for p in _LUA.iterdir() if p.name.startswith(f"{name}-")]
    if len(matches) != 1:
        raise LookupError(f"expected exactly one lua/{name}-N.lua")
    path = matches[0]
    key_count = int(path.name.removesuffix(".lua").rsplit("-", 1)[1])
    return LuaScript(name, key_count, prelude + "\n" + path.read_text(encoding="utf-8"))


SCRIPT_NAMES = (
    "enqueue",
    "claim",
    "append",
    "finish",
    "requeue",
    "heartbeat",
    "reclaim",
    "cancel",
    "ratewindow",
    "health",
    "requeuedead",
    "handoff",
    "adopt",
    "pbtake",
    "pbrelease",
)


REPEATABLE = frozenset(SCRIPT_NAMES) - {"claim", "enqueue", "requeuedead", "pbtake"}
"""Scripts whose second run, after a first whose reply was lost, changes nothing more: each is
fenced by the job's attempt (or a sequence number, or an entry id), or only reads."""


class Scripts:
    """All broker scripts bound to one client; ``link``: the repeatable ones wait out Redis
    outages (a worker's way; the API answers 503 instead)."""

    def __init__(self, redis: Redis, link: RedisLink | None = None) -> None:
        pipeline = AutoPipeline(redis)
        bound = {
            name: _load(name).bind(pipeline, link if name in REPEATABLE else None)
            for name in SCRIPT_NAMES
        }
        self.enqueue = bound["enqueue"]
        self.claim = bound["claim"]
        self.append = bound["append"]
        self.finish = bound["finish"]
        self.requeue = bound["requeue"]
        self.heartbeat = bound["heartbeat"]
        self.reclaim = bound["reclaim"]
        self.cancel = bound["cancel"]
        self.ratewindow = bound["ratewindow"]
        self.health = bound["health"]
        self.requeuedead = bound["requeuedead"]
        self.handoff = bound["handoff"]
        self.adopt = bound["adopt"]
        self.pbtake = bound["pbtake"]
        self.pbrelease = bound["pbrelease"]
