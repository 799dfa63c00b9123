"""``anygate dev`` on a machine with no Redis running, no Docker and no provider key
(docs/operations.md#running)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import httpx

from tests.support.processes import ManagedProcess, free_port


def _env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        values[name] = value
    return values


def _dev(data_dir: Path, port: int, *options: str) -> ManagedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYGATE")}
    env.pop("OPENAI_API_KEY", None)
    env.pop("GEMINI_API_KEY", None)
    return ManagedProcess.start(
        [
            sys.executable,
            "-m",
            "anygate.ops",
            "dev",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            *options,
        ],
        env=env,
        ready_url=f"http://127.0.0.1:{port}/readyz",
        timeout=60,
    )


def _run_job(url: str, key: str, text: str, model: str = "gpt-4o-mini") -> dict[str, object]:
    headers = {"authorization": f"Bearer {key}"}
    job = httpx.post(
        f"{url}/v1/jobs",
        headers=headers,
        json={
            "endpoint": "/v1/chat/completions",
            "body": {"model": model, "messages": [{"role": "user", "content": text}]},
        },
    ).json()
    done: dict[str, object] = httpx.get(
        f"{url}/v1/jobs/{job['id']}", headers=headers, params={"wait": 20}, timeout=30
    ).json()
    return done


def test_dev_serves_the_demo_and_keeps_keys_and_jobs_across_a_restart(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / ".anygate"
    with _dev(data_dir, port) as first:
        deadline = time.monotonic() + 10
        while not (data_dir / "dev.env").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        env = _env_file(data_dir / "dev.env")
        assert env["ANYGATE_URL"] == f"http://127.0.0.1:{port}"
        assert env["ANYGATE_KEY"]
        assert env["ANYGATE_ADMIN_KEY"]
        done = _run_job(env["ANYGATE_URL"], env["ANYGATE_KEY"], "hello from dev")
        assert done["status"] == "succeeded"
        gemini = _run_job(env["ANYGATE_URL"], env["ANYGATE_KEY"], "hi", "gemini-2.5-flash")
        assert gemini["status"] == "succeeded"
        assert gemini["provider"] == "gemini"
        first.terminate(timeout=40)

    with _dev(data_dir, port):
        again = _env_file(data_dir / "dev.env")
        assert again["ANYGATE_KEY"] == env["ANYGATE_KEY"], "keys survive a restart"
        headers = {"authorization": f"Bearer {again['ANYGATE_KEY']}"}
        kept = httpx.get(f"{again['ANYGATE_URL']}/v1/jobs/{done['id']}", headers=headers).json()
        assert kept["status"] == "succeeded", "results survive a restart (AOF)"
        assert (
            _run_job(again["ANYGATE_URL"], again["ANYGATE_KEY"], "again")["status"] == "succeeded"
        )


def test_dev_durability_strict_runs_redis_with_fsync_always(tmp_path: Path) -> None:
    """``--durability strict``: the embedded Redis fsyncs before every reply, every process
    runs strict (each checked the server at start), and the demo still answers."""
    port = free_port()
    data_dir = tmp_path / ".anygate"
    with _dev(data_dir, port, "--durability", "strict") as dev:
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz").json()
        assert ready["durability"] == "strict (appendonly yes, appendfsync always)"
        deadline = time.monotonic() + 10  # the banner follows readiness
        while "anygate is running" not in dev.log_tail(60) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "durability: strict (appendfsync always)" in dev.log_tail(60)
        env = _env_file(data_dir / "dev.env")
        assert _run_job(env["ANYGATE_URL"], env["ANYGATE_KEY"], "durable")["status"] == "succeeded"
