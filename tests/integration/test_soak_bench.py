"""``bench/run.py --soak`` for a few seconds: it runs to the end, every kind of call got answers
without an error, every process of the stack was sampled, its JSON has a verdict per series, and
no process it started logged an error.

Far too short for the verdicts to mean anything (docs/performance.md has a real soak); this only
keeps the soak from rotting between runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.log_scan import describe, scan

ROOT = Path(__file__).resolve().parents[2]


def test_soak_smoke(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    argv = [sys.executable, str(ROOT / "bench" / "run.py"), "--soak", "0.25"]
    argv += ["--soak-sample-s", "5", "--out", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180, cwd=ROOT, check=False)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

    doc = json.loads(out.read_text())
    logs = Path(doc["meta"]["logs"])
    assert logs == tmp_path / "soak-logs"
    texts = {log.name: log.read_text() for log in sorted(logs.glob("*.log"))}
    assert {"api.log", "control.log", "mock.log", "redis.log"} <= set(texts), sorted(texts)
    texts["the bench's own output"] = done.stdout + done.stderr
    found = [
        f"{name}:\n{describe(f)}" for name, text in texts.items() for f in scan(text.splitlines())
    ]
    assert not found, "\n".join(found)

    samples = doc["samples"]
    assert len(samples) == 3
    for sample in samples:
        assert {"api", "mock", "control", "redis"} <= set(sample["rss_mib"]), sample["rss_mib"]
        assert any(name.startswith("worker-") for name in sample["rss_mib"])
        assert all(mib > 5 for mib in sample["rss_mib"].values()), sample["rss_mib"]
        assert sample["redis_keys"] > 0
        assert sample["redis_used_memory_mib"] > 0
    calls = doc["summary"]["calls"]
    for kind in ("chat", "stream", "job", "embed"):
        assert calls[kind] > 0, calls
    assert doc["summary"]["errors"] == 0, doc["first_errors"]
    assert set(doc["verdicts"]) == set(doc["series"])
    assert "latency_p99_ms:chat" in doc["series"]
    assert "▁" in done.stdout or "█" in done.stdout, "the chart was printed"
