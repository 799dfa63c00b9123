"""Peer comparison: run the shared peerbench harness with anygate added as a target.

peerbench (``/work/shared/peerbench/bench.py``, stdlib only) is called by path, never copied:
it owns the mock, the peers and the wrk workloads, and writes ``raw.json``. We hand it an
``--extra-targets`` file whose ``anygate`` entry starts ``peer_target.py``, then map its raw
runs onto our summary keys, per peer, with the same per-repetition differences we use.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stack import KEY

from anygate.ops.processes import free_port

HERE = Path(__file__).resolve().parent
PEERBENCH = Path("/work/shared/peerbench/bench.py")


@dataclass(frozen=True)
class PeerOptions:
    targets: str
    quick: bool
    repeats: int | None
    lat_duration: int | None
    tput_duration: int | None
    stream_duration: int | None
    stream_conns: int
    mock_port: int
    timeout_s: float


def write_extra_targets(path: Path, port: int) -> Path:
    """The ``anygate`` target; peerbench substitutes ``{host}`` and ``{mock_port}``."""
    target = {
        "name": "anygate",
        "desc": "anygate: API + 1 worker over Redis streams (redis-server CPU not in gw column)",
        "workers": "1 API + 1 worker process",
        "start": [
            sys.executable,
            str(HERE / "peer_target.py"),
            "--port",
            str(port),
            "--upstream",
            "http://{host}:{mock_port}/v1",
        ],
        "env": {},
        "cwd": str(HERE),
        "url": f"http://127.0.0.1:{port}/v1/chat/completions",
        "headers": {"Authorization": f"Bearer {KEY}"},
        "ready_url": f"http://127.0.0.1:{port}/readyz",
    }
    path.write_text(json.dumps([target], indent=2))
    return path


def run_peerbench(opts: PeerOptions, out_dir: Path, work: Path) -> dict[str, Any]:
    """Run peerbench to completion (bounded), echoing its progress; return its ``raw.json``."""
    if not PEERBENCH.exists():
        raise RuntimeError(f"{PEERBENCH} not found")
    extra = write_extra_targets(work / "extra_targets.json", free_port())
    argv = [
        shutil.which("python3") or "python3",
        str(PEERBENCH),
        "--targets",
        opts.targets,
        "--extra-targets",
        str(extra),
        "--out",
        str(out_dir),
        "--mock-port",
        str(opts.mock_port),
        "--stream-conns",
        str(opts.stream_conns),
    ]
    if opts.quick:
        argv.append("--quick")  # peerbench's --quick overrides repeats and durations
    for flag, value in (
        ("--repeats", opts.repeats),
        ("--lat-duration", opts.lat_duration),
        ("--tput-duration", opts.tput_duration),
        ("--stream-duration", opts.stream_duration),
    ):
        if value is not None:
            argv += [flag, str(value)]
    print(f"[peers] {' '.join(argv)}", flush=True)
    proc = subprocess.Popen(argv, start_new_session=True, stdin=subprocess.DEVNULL)
    try:
        proc.wait(timeout=opts.timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # peerbench then stops its own targets
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        raise RuntimeError(f"peerbench did not finish in {opts.timeout_s} s") from None
    except BaseException:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"peerbench exited with {proc.returncode}")
    raw: dict[str, Any] = json.loads((out_dir / "raw.json").read_text())
    return raw


def _by_rep(runs: list[dict[str, Any]], target: str, workload: str, key: str) -> dict[int, float]:
    """One value per repetition; a failed run, or one in which no request completed (LiteLLM
    streaming at 64 connections in a 3 s run), has no value rather than a zero."""
    return {
        r["rep"]: float(r[key])
        for r in runs
        if r["target"] == target and r["workload"] == workload and r.get("requests")
    }


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def peer_summary(raw: dict[str, Any]) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """Per target: added p50/p99 (per-repetition difference to ``direct``, median), req/s.

    Returns the ``summary.peers`` mapping and a detail record (medians with min/max, smoke
    results, failures) for the ``runs`` section.
    """
    runs = raw["runs"]
    targets = raw["meta"]["targets"]
    peers: dict[str, dict[str, float]] = {}
    detail: dict[str, Any] = {"args": raw["meta"]["args"], "versions": raw["meta"]["versions"]}
    for t in targets:
        name = t["name"]
        detail[name] = {"failed": t["failed"], "smoke": t["smoke"], "spread": {}}
        if t["failed"]:
            continue
        series: dict[str, list[float]] = {
            "throughput_rps": list(_by_rep(runs, name, "tput", "rps").values()),
            "stream_rps": list(_by_rep(runs, name, "stream", "rps").values()),
        }
        if name != "direct":
            for pct in ("p50", "p99"):
                mine = _by_rep(runs, name, "lat", f"{pct}_ms")
                base = _by_rep(runs, "direct", "lat", f"{pct}_ms")
                diffs = [mine[rep] - base[rep] for rep in mine if rep in base]
                series[f"added_latency_{pct}_ms"] = diffs
        order = ["added_latency_p50_ms", "added_latency_p99_ms", "throughput_rps", "stream_rps"]
        values = {k: _median(series[k]) for k in order if k in series}
        peers[name] = {k: v for k, v in values.items() if v is not None}
        detail[name]["spread"] = {k: [min(v), max(v)] for k, v in series.items() if v}
        detail[name]["errors"] = sum(int(r.get("errors", 0)) for r in runs if r["target"] == name)
    return peers, detail
