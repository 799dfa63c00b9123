"""bench/queue_peers.py's reading of queuebench's raw.json (medians, per-repetition ratios,
verdicts, the table), its check that the peers are installed, and bench/queuebench_protocol.py's
marker and percentiles, on hand-made inputs."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str) -> ModuleType:
    """bench/ is not a package: its modules import each other as top-level modules."""
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


_load("report")  # queue_peers imports it as a top-level module
qp = _load("queue_peers")
protocol = _load("queuebench_protocol")


def _run(
    target: str, mode: str, rep: int, drain: float, p50: float, **extra: Any
) -> dict[str, Any]:
    return {
        "target": target,
        "mode": mode,
        "rep": rep,
        "ok": True,
        "enqueue_jobs_s": 10_000.0,
        "drain_jobs_s": drain,
        "rt_p50_ms": p50,
        "rt_p99_ms": p50 * 3,
        **extra,
    }


def _raw() -> dict[str, Any]:
    runs = []
    for mode in ("noaof", "aof"):
        # BullMQ 1,000 / 2,000 / 4,000 jobs/s; anygate 3x, 2x, 1x of the same repetition
        for rep, (bull, mine) in enumerate(((1000, 3000), (2000, 4000), (4000, 4000))):
            runs.append(_run("bullmq-c32", mode, rep, bull, 2.0))
            runs.append(
                _run(
                    "anygate",
                    mode,
                    rep,
                    mine,
                    0.5 + rep,
                    redis_cpu_us_per_job=100.0 + rep,
                    worker_cpu_us_per_job=80.0,
                    startup_s=0.4,
                )
            )
            runs.append(_run("raw-streams", mode, rep, 80_000, 0.6))
    runs.append({"target": "saq", "mode": "aof", "rep": 0, "ok": False, "error": "rc=1: boom"})
    runs.append(_run("saq", "aof", 1, 1300, 22.0, rt_p50_ms=float("nan")))
    return {"meta": {"n": 20000}, "results": runs}


def test_medians_and_spread_per_mode_and_queue() -> None:
    figures = qp.peer_figures(_raw())
    mine = figures["aof"]["anygate"]
    assert mine["drain_jobs_s"]["median"] == 4000
    assert (mine["drain_jobs_s"]["min"], mine["drain_jobs_s"]["max"]) == (3000, 4000)
    assert mine["redis_cpu_us_per_job"]["median"] == 101.0
    assert mine["ok_runs"] == mine["runs"] == 3
    assert "redis_cpu_us_per_job" not in figures["aof"]["bullmq-c32"]
    saq = figures["aof"]["saq"]
    assert (saq["ok_runs"], saq["runs"]) == (1, 2)
    assert saq["errors"] == ["rc=1: boom"]
    assert saq["rt_p50_ms"]["median"] is None  # NaN is no measurement


def test_ratios_of_medians_and_of_each_repetition() -> None:
    raw = _raw()
    found = qp.ratios(raw, qp.peer_figures(raw))["aof"]
    drain = found["drain_vs_bullmq"]
    assert drain["of_medians"] == pytest.approx(4000 / 2000)
    assert drain["paired_median"] == pytest.approx(2.0)  # per rep: 3, 2, 1
    assert drain["met"] is False
    assert drain["target"] == ">= 3"
    rt = found["round_trip_vs_bullmq"]
    assert rt["of_medians"] == pytest.approx(1.5 / 2.0)
    assert rt["met"] is False
    # the targets are for AOF everysec: AOF off gets its figures and no verdict
    assert qp.ratios(raw, qp.peer_figures(raw))["noaof"]["drain_vs_bullmq"]["met"] is None


def test_round_trip_target_met_when_half_of_bullmq_or_less() -> None:
    raw = _raw()
    for r in raw["results"]:
        if r["target"] == "anygate":
            r["rt_p50_ms"] = 0.9
    found = qp.ratios(raw, qp.peer_figures(raw))["aof"]
    assert found["round_trip_vs_bullmq"]["of_medians"] == pytest.approx(0.45)
    assert found["round_trip_vs_bullmq"]["met"] is True


def test_summary_keys_come_from_aof_everysec() -> None:
    raw = _raw()
    for r in raw["results"]:
        if r["target"] == "anygate" and r["mode"] == "noaof":
            r["drain_jobs_s"] = 1.0
    keys, block = qp.queue_summary(raw)
    assert keys == {"drain_vs_bullmq": pytest.approx(2.0), "round_trip_vs_bullmq": 0.75}
    assert block["figures"]["aof"]["raw-streams"]["drain_jobs_s"]["median"] == 80_000
    json.dumps(block)  # goes into the results file as is


def test_no_bullmq_or_no_anygate_gives_no_ratio() -> None:
    raw = _raw()
    raw["results"] = [r for r in raw["results"] if r["target"] != "bullmq-c32"]
    keys, block = qp.queue_summary(raw)
    assert keys == {"drain_vs_bullmq": None, "round_trip_vs_bullmq": None}
    assert "n/a" in qp.queue_table(block)


def test_table_shows_every_queue_and_the_ratios_beside_their_targets() -> None:
    _keys, block = qp.queue_summary(_raw())
    table = qp.queue_table(block)
    assert table.index("Redis AOF everysec:") < table.index("Redis AOF off:")
    assert "| anygate | 10,000 (10,000 to 10,000) | 4,000 (3,000 to 4,000) |" in table
    assert "| saq |" in table
    assert "| 1/2 |" in table
    drain_row = (
        "| drain_vs_bullmq: drain jobs/s, anygate ÷ BullMQ c32 | AOF everysec | 2.00 | 2.00 |"
    )
    assert drain_row in table
    assert ">= 3 | MISSED |" in table
    assert "redis_cpu_us_per_job 101" in table


def test_missing_peers_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qp, "QPEERS", tmp_path)
    missing = qp.missing_peers("raw-streams,bullmq-c32,arq-poll10ms")
    assert any(str(tmp_path / "venv-raw/bin/python") in m for m in missing)
    assert any("bullmq/package.json" in m and "(bullmq-c32)" in m for m in missing)
    assert any(str(tmp_path / "venv-arq/bin/python") in m for m in missing)
    with pytest.raises(RuntimeError, match=r"not installed .*setup\.sh"):
        qp.check_installed("saq")


def test_installed_peers_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qp, "QPEERS", tmp_path)
    monkeypatch.setattr(qp, "QUEUEBENCH", Path(__file__))  # any existing file
    python = tmp_path / "venv-saq" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.touch()
    assert qp.missing_peers("saq") == []
    qp.check_installed("saq")


def test_queuebench_is_given_our_driver_as_an_extra_peer(tmp_path: Path) -> None:
    opts = qp.QueueOptions("raw-streams,bullmq-c32", 5000, 50, 2, 600)
    argv = qp.queuebench_argv(opts, tmp_path)
    extra = argv[argv.index("--extra-peer") + 1]
    assert extra.startswith("anygate=")
    assert extra.endswith("bench/queuebench_driver.py")
    assert argv[argv.index("--n") + 1] == "5000"
    assert argv[argv.index("--repeats") + 1] == "2"
    assert argv[argv.index("--results") + 1] == str(tmp_path)


def test_marker_stamps_progress_then_done(tmp_path: Path) -> None:
    done = tmp_path / "done.json"
    marker = protocol.Marker(600, done)
    for _ in range(499):
        marker.mark()
    progress = json.loads((tmp_path / "done.json.progress").read_text())
    assert progress["count"] == 250
    assert not done.exists()
    for _ in range(101):
        marker.mark()
    stamp = json.loads(done.read_text())
    assert stamp["count"] == 600
    assert stamp["t_last"] >= stamp["t_first"] == marker.t_first
    result = protocol.drain_result(stamp, stamp["t_first"] - 1.5, 600)
    assert result["startup_s"] == pytest.approx(1.5)
    assert result["drained"] == 600
    assert result["worker_cpu_us_per_job"] >= 0


def test_percentiles_are_nearest_rank() -> None:
    values = [float(x) for x in range(1, 101)]
    assert protocol.percentile(values, 50) == 51  # round(0.5 * 99) = 50 → the 51st
    assert protocol.percentile(values, 99) == 99
    assert protocol.percentile([], 50) != protocol.percentile([], 50)  # NaN
    summary = protocol.rt_summary([0.001, 0.002, 0.003])
    assert summary["rt_samples"] == 3
    assert summary["rt_p50_ms"] == pytest.approx(2.0)
