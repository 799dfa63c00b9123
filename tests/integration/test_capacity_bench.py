"""bench/capacity.py at a tiny size: it runs to the end, its JSON has a figure for every hot-path
script and process and every figure is positive, and no process it started logged an error.

The sizes are far too small for the figures to mean anything (docs/capacity.md has a real run);
this only keeps the bench from rotting between runs.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.log_scan import describe, scan

ROOT = Path(__file__).resolve().parents[2]
HOT_SCRIPTS = {"enqueue", "claim", "ratewindow", "append", "finish"}

pytestmark = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="needs wrk (Debian package: wrk)"
)


def _positive(figures: dict[str, Any], where: str) -> None:
    for key, value in figures.items():
        if key.endswith(("_us_per_call", "_us_per_job", "_us_per_request")):
            assert value > 0, f"{where}: {key} = {value}"


def test_capacity_bench_smoke(tmp_path: Path) -> None:
    out, logs = tmp_path / "capacity.json", tmp_path / "logs"
    argv = [sys.executable, str(ROOT / "bench" / "capacity.py"), "--jobs", "200"]
    argv += ["--seconds", "1", "--attribution-seconds", "1", "--out", str(out), "--logs", str(logs)]
    argv += ["--shard-jobs", "200", "--shard-reps", "1", "--reps", "1"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=150, cwd=ROOT, check=False)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

    texts = {log.name: log.read_text() for log in sorted(logs.glob("*.log"))}
    assert {"api.log", "redis.log", "drain-noop.log"} <= set(texts), sorted(texts)
    texts["the bench's own output"] = done.stdout + done.stderr
    found = [
        f"{name}:\n{describe(f)}" for name, text in texts.items() for f in scan(text.splitlines())
    ]
    assert not found, "\n".join(found)

    doc = json.loads(out.read_text())
    phases = doc["phases"]["phases"]
    assert {row["script"] for row in phases} == HOT_SCRIPTS
    for row in phases:
        _positive(row, f"phase {row['phase']}")
        assert row["calls"] >= row["jobs"] * row["calls_per_job"] * 0.999
    enqueue = next(r for r in phases if r["phase"] == "enqueue")
    # coalesced: a call carries many jobs; never more calls than jobs (scripts were loaded
    # first: no NOSCRIPT round)
    assert 0 < enqueue["calls_per_job"] <= 1

    _positive(doc["drain"], "drain")
    for kind in ("plain", "stream"):
        figures = doc["http"][kind]
        for process in ("redis", "api", "worker"):
            assert figures[f"{process}_cpu_us_per_request"] > 0, (kind, process, figures)
        att = doc["attribution"][kind]
        assert att["complete"], att["evalsha_calls"]
        scripts = {row["command"] for row in att["rows"]}
        assert {"script enqueue", "script claim", "script finish"} <= scripts, scripts
        for row in att["rows"]:
            _positive(row, f"attribution {kind} {row['command']}")
        assert sum(row["share"] for row in att["rows"]) == pytest.approx(1)
    assert "script append" in {row["command"] for row in doc["attribution"]["stream"]["rows"]}

    shards = doc["shards"]["figures"]
    for key in ("jobs_per_s_per_shard", "jobs_per_s", "redis_cpu_us_per_job", "worker_busy_pct"):
        for config in ("one", "three"):
            assert shards[key][config]["median"] > 0, (key, config, shards[key])
        assert shards[key]["three_over_one"]["of_medians"] > 0
    three = next(r for r in doc["shards"]["runs"] if r["config"] == "three")
    ports = {pool["node_port"] for pool in three["pools"].values()}
    assert len(ports) == 3, f"the three pools' shards are not on three masters: {three['pools']}"

    plans = doc["model"]["plans"]
    assert [p["rate"] for p in plans] == [1_000, 10_000, 100_000]
    for small, large in itertools.pairwise(plans):
        assert large["shards"] >= small["shards"] >= 1
        assert large["api_processes"] >= small["api_processes"] >= 1
        assert large["worker_processes"] >= small["worker_processes"] >= 1
