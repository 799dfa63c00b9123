"""The core job and compatibility suites, run again against a local 3-master Redis Cluster
(docs/scaling.md): the same tests, with ``ANYGATE_TEST_REDIS_MODE=cluster``, so every config
says ``redis.mode: cluster`` and each pool's queues and jobs live under its own shard's hash tag
(the pool's name), on whichever node serves that slot. A test whose subject is one server's
restart is marked ``standalone_only`` and left out of this run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.configs import REDIS_MODE_ENV

ROOT = Path(__file__).resolve().parents[2]

SUITES = (
    "tests/integration/test_broker_delivery.py",
    "tests/integration/test_broker_dispatch.py",
    "tests/integration/test_broker_repeats.py",
    "tests/integration/test_jobs_api.py",
    "tests/integration/test_fallback.py",
    "tests/integration/test_sdk_openai.py",
    "tests/integration/test_sdk_genai.py",
    "tests/integration/test_batches.py",
    "tests/integration/test_provider_batch_store.py",
    "tests/integration/test_provider_batch_collector.py",
)


def test_core_suites_pass_on_a_redis_cluster() -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "timeout",
            "--timeout",
            "180",
            *SUITES,
        ],
        cwd=ROOT,
        env={**os.environ, REDIS_MODE_ENV: "cluster"},
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    summary = run.stdout[-6000:]
    assert run.returncode == 0, summary + run.stderr[-2000:]
    assert " passed" in summary
    assert " failed" not in summary
