"""The side-by-side queue harness's driver protocol, as anygate's driver speaks it.

The harness (docs/performance.md#same-run-queue-comparison) starts every queue's driver with
``--url --n --samples --out`` (and ``--workdir --drain-timeout --rt-budget``); the driver
enqueues N no-op jobs, starts a worker *process*, and the worker's job body stamps a marker: the
first job records ``t_first``, the N-th writes ``{t_first, t_last, count}`` to ``$QB_DONE_FILE``
(every 250th writes the same to ``<file>.progress``, so a capped drain still has a rate). Then
round trips, one at a time. The driver writes one JSON object to ``--out``; the harness reads
``enqueue_jobs_s``, ``drain_jobs_s``, ``startup_s``, ``rt_p50_ms``, ``rt_p99_ms`` and the notes.

This module holds what does not depend on the queue: the marker, the wait for it, the
percentiles and the JSON. Kept apart from the harness's own files on purpose: it is run from its
own folder and is not part of this project.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

WARMUP = 10
"""Round trips discarded before sampling starts (connections, caches)."""
PROGRESS_EVERY = 250


def write_atomic(path: Path, document: dict[str, Any]) -> None:
    """The reader polls the file: it must never see half of it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document))
    os.replace(tmp, path)


class Marker:
    """Counts finished no-op jobs inside the worker process (one event loop: no lock needed).

    Besides the protocol's wall-clock stamps it records the worker's own CPU time at the first
    and the last job, so the worker's CPU per job excludes its start-up."""

    def __init__(self, n: int, done_file: Path | None) -> None:
        self.n = n
        self.done_file = done_file
        self.count = 0
        self.t_first = 0.0
        self.cpu_first = 0.0

    @classmethod
    def from_env(cls) -> Marker:
        path = os.environ.get("QB_DONE_FILE", "")
        return cls(int(os.environ.get("QB_N", "0")), Path(path) if path else None)

    def mark(self) -> None:
        self.count += 1
        if self.count == 1:
            self.t_first, self.cpu_first = time.time(), time.process_time()
        if self.done_file is None:
            return
        if self.count == self.n:
            write_atomic(self.done_file, self._stamp())
        elif self.count % PROGRESS_EVERY == 0 and self.count < self.n:
            write_atomic(self.done_file.with_name(self.done_file.name + ".progress"), self._stamp())

    def _stamp(self) -> dict[str, Any]:
        return {
            "t_first": self.t_first,
            "t_last": time.time(),
            "count": self.count,
            "worker_cpu_s": time.process_time() - self.cpu_first,
        }


def clear_marker(done_file: Path) -> None:
    for path in (done_file, done_file.with_name(done_file.name + ".progress")):
        path.unlink(missing_ok=True)


def read_stamp(path: Path) -> dict[str, Any] | None:
    """A stamp, or None while there is none (a stat every poll: nothing worth a thread)."""
    if not path.exists():
        return None
    found: dict[str, Any] = json.loads(path.read_text())
    return found


async def wait_done(
    done_file: Path, proc: asyncio.subprocess.Process, limit_s: float
) -> dict[str, Any]:
    """The worker's final stamp; past ``limit_s`` its last progress stamp, marked partial."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if (stamp := read_stamp(done_file)) is not None:
            return stamp
        if proc.returncode is not None:
            raise RuntimeError(f"worker exited early with rc={proc.returncode}")
        await asyncio.sleep(0.02)
    partial = read_stamp(done_file.with_name(done_file.name + ".progress"))
    if partial is not None:
        return {**partial, "partial": True}
    raise TimeoutError(f"drain not finished within {limit_s:.0f} s (no progress)")


def drain_result(stamp: dict[str, Any], t_spawn: float, n: int) -> dict[str, Any]:
    """``drain_jobs_s`` over first → last job: the worker's start-up is ``startup_s``."""
    span = float(stamp["t_last"]) - float(stamp["t_first"])
    count = int(stamp.get("count", n))
    out: dict[str, Any] = {
        "drain_s": span,
        "drain_jobs_s": count / span if span > 0 else float("nan"),
        "drained": count,
        "drain_partial": bool(stamp.get("partial")),
        "startup_s": float(stamp["t_first"]) - t_spawn,
    }
    if "worker_cpu_s" in stamp and count:
        out["worker_cpu_us_per_job"] = float(stamp["worker_cpu_s"]) / count * 1e6
    return out


def percentile(values: list[float], p: float) -> float:
    """Nearest rank on ``(len - 1)``, as every driver of the harness computes it."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def rt_summary(latencies_s: list[float]) -> dict[str, Any]:
    ms = [x * 1000 for x in latencies_s]
    return {
        "rt_samples": len(ms),
        "rt_p50_ms": percentile(ms, 50),
        "rt_p99_ms": percentile(ms, 99),
        "rt_mean_ms": sum(ms) / len(ms) if ms else float("nan"),
    }
