"""bench/waiters.py at a tiny size, against this checkout and (interleaved) main's: it runs to
the end, every waiter is answered after its job ended, its JSON has every figure for both sides,
and no process it started logged an error.

The sizes are far too small for the figures to mean anything (docs/performance.md has a run);
this only keeps the bench from rotting between runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.log_scan import describe, scan

ROOT = Path(__file__).resolve().parents[2]
FIGURES = {"wake_p50_ms", "wake_p99_ms", "wake_max_ms", "setup_s", "api_redis_conns"}


def test_waiters_bench_smoke(tmp_path: Path) -> None:
    out, logs = tmp_path / "waiters.json", tmp_path / "logs"
    argv = [sys.executable, str(ROOT / "bench" / "waiters.py"), "--polls", "15", "--watchers"]
    argv += ["15", "--rate", "200", "--reps", "1", "--baseline", "HEAD"]
    argv += ["--out", str(out), "--logs", str(logs)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=150, cwd=ROOT, check=False)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

    texts = {log.name: log.read_text() for log in sorted(logs.glob("*.log"))}
    assert {"api-current.log", "gate-current.log", "api-baseline.log"} <= set(texts), texts
    texts["the bench's own output"] = done.stdout + done.stderr
    found = [
        f"{name}:\n{describe(f)}" for name, text in texts.items() for f in scan(text.splitlines())
    ]
    assert not found, "\n".join(found)

    doc = json.loads(out.read_text())
    assert doc["summary"]["waiter_wake_p99_ms"] > 0
    assert {run["side"] for run in doc["runs"]} == {"current", "baseline"}
    for run in doc["runs"]:
        assert run["errors"] == 0, run["first_errors"]
        assert 0 < run["wake_p50_ms"] <= run["wake_p99_ms"] <= run["wake_max_ms"] < 5000, run
        assert run["api_redis_conns"] >= 2  # its pool and its subscription connection
        assert run["api_subscriptions"] >= 1
    for key in FIGURES:
        assert set(doc["table"][key]) >= {"current", "baseline", "current_over_baseline"}
