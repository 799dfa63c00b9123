"""bench/redis_cost.py at a tiny size: it runs to the end, its JSON carries a positive Redis CPU
per job for the floor and both kinds of job, the per-script rows name the hot-path scripts, and
no process it started logged an error.

The sizes are far too small for the figures to mean anything (the bench's own runs do); this only
keeps the bench from rotting between runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.log_scan import describe, scan

ROOT = Path(__file__).resolve().parents[2]


def test_redis_cost_bench_smoke(tmp_path: Path) -> None:
    out, logs = tmp_path / "redis-cost.json", tmp_path / "logs"
    argv = [sys.executable, str(ROOT / "bench" / "redis_cost.py"), "--jobs", "300"]
    argv += ["--attribution-jobs", "100", "--reps", "1", "--out", str(out), "--logs", str(logs)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180, cwd=ROOT, check=False)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

    texts = {log.name: log.read_text() for log in sorted(logs.glob("*.log"))}
    assert "redis.log" in texts, sorted(texts)
    assert any(name.endswith("-noop.log") for name in texts), sorted(texts)
    texts["the bench's own output"] = done.stdout + done.stderr
    found = [
        f"{name}:\n{describe(f)}" for name, text in texts.items() for f in scan(text.splitlines())
    ]
    assert not found, "\n".join(found)

    doc = json.loads(out.read_text())
    summary = doc["summary"]
    for key in ("redis_cpu_us_per_job", "redis_cpu_us_per_streamed_job", "floor_cpu_us_per_job"):
        assert summary[key] > 0, (key, summary)
    assert summary["redis_cpu_us_per_job"] > summary["floor_cpu_us_per_job"]
    for kind in ("plain", "stream"):
        rows = {r["command"]: r for r in doc["cells"][kind]["attribution"]["rows"]}
        assert {"script enqueue", "script claim", "script finish"} <= set(rows), sorted(rows)
        # coalesced: a call carries many jobs; never more calls than jobs (scripts loaded
        # first: no NOSCRIPT repeat)
        assert 0 < rows["script enqueue"]["calls_per_job"] <= 1
        assert 0 < rows["script finish"]["calls_per_job"] <= 1
        assert 0 < rows["script claim"]["calls_per_job"] <= 1
    streamed = {r["command"] for r in doc["cells"]["stream"]["attribution"]["rows"]}
    assert "script append" in streamed
    assert "script append" not in {
        r["command"] for r in doc["cells"]["plain"]["attribution"]["rows"]
    }
