"""bench/console_pages.py at a tiny size: it runs to the end and its JSON has every page and
peer with their figures. Far too small for the figures to mean anything (docs/console.md has a
run); this only keeps the bench from rotting between runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = {"overview", "tenants", "tenant", "jobs (tenant)", "job", "batches", "dead letters"}


def test_console_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "console.json"
    argv = [sys.executable, str(ROOT / "bench" / "console_pages.py"), "--rounds", "2"]
    argv += ["--jobs", "5", "--out", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=150, cwd=ROOT, check=False)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    figures = json.loads(out.read_text())["figures"]
    assert PAGES | {"config", "admin: queues", "overview stream: first fragment"} <= set(figures)
    for name in PAGES:
        f = figures[name]
        assert f["median_ms"] > 0
        assert f["bytes"] > 1000, name
        assert f["ratio_to_admin_queues"] > 0
    assert "| overview |" in done.stdout
