"""bench/queuebench_driver.py at a tiny size, driven as the queuebench harness drives it (its
command line, a work dir of its own, the marker file), against the test Redis: it enqueues,
drains through a real worker process that stamps the marker, does its round trips and writes
the JSON the harness reads; a drain that cannot finish in time fails the run with the reason.

The sizes are far too small for the figures to mean anything (docs/performance.md has a real
run); this keeps the driver from rotting between runs. queuebench itself is not needed.
"""

from __future__ import annotations

import json
import math
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.configs import redis_mode
from tests.support.log_scan import describe, scan
from tests.support.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
DRIVER = ROOT / "bench" / "queuebench_driver.py"
N, SAMPLES = 400, 20

pytestmark = pytest.mark.skipif(
    redis_mode() == "cluster", reason="queuebench gives every queue one standalone Redis"
)


def _drive(
    url: str, work: Path, *extra: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(DRIVER), "--url", url, "--n", str(N), "--samples", str(SAMPLES)]
    argv += ["--out", str(work / "result.json"), "--workdir", str(work)]
    argv += ["--namespace", f"qb{secrets.token_hex(4)}", *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def _no_errors(text: str, where: str) -> None:
    found = scan(text.splitlines())
    assert not found, f"{where}:\n" + "\n".join(describe(f) for f in found)


def test_driver_speaks_the_harness_protocol(redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    done = _drive(redis_server.url, tmp_path, "--drain-timeout", "60", "--rt-budget", "20")
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    _no_errors((tmp_path / "worker.log").read_text(), "worker.log")

    result = json.loads((tmp_path / "result.json").read_text())
    assert result["n"] == N
    assert result["drained"] == N
    assert result["drain_partial"] is False
    for key in ("enqueue_jobs_s", "drain_jobs_s", "startup_s", "rt_p50_ms", "rt_p99_ms"):
        assert isinstance(result[key], float), key
        assert math.isfinite(result[key]), key
        assert result[key] > 0, (key, result[key])
    assert result["rt_samples"] == SAMPLES
    assert result["rt_p50_ms"] <= result["rt_p99_ms"] < 10_000
    assert result["redis_cpu_us_per_job"] > 0
    assert result["worker_cpu_us_per_job"] > 0
    # the protocol's marker: N jobs counted by the worker's no-op call, first → last stamp
    stamp = json.loads((tmp_path / "done.json").read_text())
    assert stamp["count"] == N
    assert result["drain_s"] == pytest.approx(stamp["t_last"] - stamp["t_first"])
    # the drain's Redis figures are per drained job: fewer script calls than jobs (a claim
    # takes many jobs, a call finishes many: broker/coalescer.py), never none
    evalsha = result["redis_commands_per_job"]["evalsha"]["calls"]
    assert 0 < evalsha < 1, result["redis_commands_per_job"]
    assert result["worker"] == "1 proc, anygate Worker, concurrency=64"


def test_a_drain_past_its_time_limit_fails_the_run(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    """No marker within the limit (the worker is still starting): no figure is made up."""
    done = _drive(redis_server.url, tmp_path, "--drain-timeout", "0.05")
    assert done.returncode != 0
    assert "drain not finished within 0 s (no progress)" in done.stderr
    assert not (tmp_path / "result.json").exists()


def test_an_unreachable_redis_fails_the_run(tmp_path: Path) -> None:
    done = _drive(f"redis://127.0.0.1:{free_port()}/0", tmp_path, timeout=60)
    assert done.returncode != 0
    assert "ConnectionError" in done.stderr or "Connection refused" in done.stderr
    assert not (tmp_path / "result.json").exists()
