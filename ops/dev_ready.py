"""When is an ``anygate dev`` stack ready: every part it started answers, not just the API.

A banner printed when ``/readyz`` first answers would send a user's first job to a queue no
worker claims yet, or a batch to a control plane still starting. So each part is asked by the
sign it really gives of running:

- the mock provider: its ``/_mock/health``;
- the API: ``/readyz`` answers 200, *and* the API process we started is the one listening on
  the port (a server already there would answer ``/readyz`` too);
- each pool's worker: an entry in the pool's worker registry whose heartbeat is newer than
  this start (``heartbeat-2.lua`` writes it; older entries are a previous run's);
- the control plane: ``control:ticked``, which its batch tick sets every second, deleted
  before control starts so that only this run's tick counts.

The parts are awaited one after another against one deadline; a part that dies or does not
come up in time is named in the error (``ProcessStartError``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import psutil
import redis

from anygate.broker.keys import KeySpace
from anygate.broker.worker_registry import decode_registry_value
from anygate.ops.processes import Child, Probe, ProcessStartError, http_probe, wait_until

READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class StackParts:
    """What was started, and where each part answers."""

    url: str
    port: int
    api: Child
    workers: Mapping[str, Child]
    """By pool."""
    control: Child
    mock_url: str | None
    keys: KeySpace


def redis_now_ms(client: redis.Redis) -> int:
    """Redis's clock, which heartbeats are stamped with (``now_ms`` in the scripts)."""
    seconds, micros = cast("tuple[int, int]", client.time())
    return int(seconds) * 1000 + int(micros) // 1000


def forget_control_tick(client: redis.Redis, keys: KeySpace) -> None:
    """Before control starts: a tick left by a previous run must not count as this one's."""
    client.delete(keys.control_ticked)


def listens_probe(child: Child, port: int) -> Probe:
    """Up once ``child`` itself holds a listening socket on ``port``."""

    def probe() -> str | None:
        try:
            conns = psutil.Process(child.pid).net_connections(kind="tcp")
        except psutil.Error as exc:
            return repr(exc)
        mine = any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in conns)
        return None if mine else f"{child.name} does not listen on port {port}"

    return probe


def all_of(*probes: Probe) -> Probe:
    """Up once every probe is; the first one's note otherwise."""

    def probe() -> str | None:
        for each in probes:
            note = each()
            if note is not None:
                return note
        return None

    return probe


def worker_probe(client: redis.Redis, keys: KeySpace, pool: str, since_ms: int) -> Probe:
    """Up once a worker of ``pool`` heartbeated after ``since_ms``."""

    def probe() -> str | None:
        try:
            found: dict[str, str] = client.hgetall(keys.workers(pool))  # type: ignore[assignment]
        except redis.RedisError as exc:
            return repr(exc)
        for text in found.values():
            value = decode_registry_value(text)
            if value is not None and value.heartbeat_ms >= since_ms:
                return None
        return "not registered yet" if not found else "no heartbeat from this run yet"

    return probe


def control_probe(client: redis.Redis, keys: KeySpace) -> Probe:
    """Up once the control plane's batch tick has run."""

    def probe() -> str | None:
        try:
            return None if client.exists(keys.control_ticked) else "no tick yet"
        except redis.RedisError as exc:
            return repr(exc)

    return probe


def wait_ready(
    parts: StackParts,
    client: redis.Redis,
    since_ms: int,
    watch: Sequence[Child],
    *,
    timeout: float = READY_TIMEOUT_S,
) -> None:
    """Wait for every part in turn (see the module's docstring), all within ``timeout``;
    ``ProcessStartError`` names the part that died or did not come up."""
    deadline = time.monotonic() + timeout
    steps: list[tuple[str, Probe]] = []
    if parts.mock_url is not None:
        steps.append(("the mock provider", http_probe(f"{parts.mock_url}/_mock/health")))
    steps.append(
        (
            f"the API on {parts.url}",
            all_of(http_probe(f"{parts.url}/readyz"), listens_probe(parts.api, parts.port)),
        )
    )
    for pool in parts.workers:
        steps.append((f"the {pool} worker", worker_probe(client, parts.keys, pool, since_ms)))
    steps.append(("the control plane", control_probe(client, parts.keys)))
    for what, probe in steps:
        left = round(max(0.1, deadline - time.monotonic()), 1)
        try:
            wait_until(probe, what=what, watch=watch, timeout=left, interval=0.1)
        except ProcessStartError as exc:
            if time.monotonic() < deadline:
                raise  # a part died: the error names it
            raise ProcessStartError(f"not ready within {timeout:g} s: {exc}") from None
