"""``anygate dev`` on a machine with no Redis running, no Docker and no provider key
(docs/operations.md#one-machine-anygate-dev): the demo it serves, what survives a restart, the
banner only once every part is up, a quiet idle stack, one stack per data folder, a taken
port refused before anything starts, and a killed stack that leaves nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import redis
import yaml

from anygate.broker.keys import KeySpace
from anygate.ops.dev_env import read_env_file
from anygate.ops.port_check import check_port
from tests.support.configs import hash_key
from tests.support.console import ConsoleHttp
from tests.support.processes import ManagedProcess, free_port

BANNER = "anygate is running at "
ENV_NAMES = [
    "ANYGATE_URL",
    "ANYGATE_KEY",
    "ANYGATE_ADMIN_KEY",
    "ANYGATE_REDIS_URL",
    "ANYGATE_CONFIG",
]
START_TIMEOUT_S = 90.0
IDLE_WINDOW_S = 15.0
IDLE_LINES_ALLOWED = 5


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYGATE")}
    env.pop("OPENAI_API_KEY", None)
    env.pop("GEMINI_API_KEY", None)
    return {**env, **extra}


def _argv(data_dir: Path, port: int, *options: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "anygate.ops",
        "dev",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        *options,
    ]


def _wait_banner(dev: ManagedProcess, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while BANNER not in dev.log_path.read_text(errors="replace"):
        assert dev.running, f"anygate dev exited before its banner:\n{dev.log_tail(60)}"
        assert time.monotonic() < deadline, f"no banner in {timeout:g} s:\n{dev.log_tail(60)}"
        time.sleep(0.05)


def _dev(data_dir: Path, port: int, *options: str, **env: str) -> ManagedProcess:
    """A running ``anygate dev``, returned once its banner is out."""
    dev = ManagedProcess.start(_argv(data_dir, port, *options), env=_clean_env(**env))
    try:
        _wait_banner(dev)
    except BaseException:
        dev.kill()
        raise
    return dev


def _refused(data_dir: Path, port: int, **env: str) -> subprocess.CompletedProcess[str]:
    """An ``anygate dev`` expected to stop at once: its exit and everything it printed."""
    return subprocess.run(
        _argv(data_dir, port),
        env=_clean_env(**env),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
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


def _lines(dev: ManagedProcess) -> list[str]:
    return dev.log_path.read_text(errors="replace").splitlines()


def test_dev_serves_the_demo_and_keeps_keys_and_jobs_across_a_restart(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / ".anygate"
    with _dev(data_dir, port) as first:
        env_file = data_dir / "dev.env"
        env = read_env_file(env_file)
        assert list(env) == ENV_NAMES, "exactly what the CLI reads, in this order"
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        assert env["ANYGATE_URL"] == f"http://127.0.0.1:{port}"
        assert env["ANYGATE_CONFIG"] == str((data_dir / "config.yaml").resolve())
        with redis.Redis.from_url(env["ANYGATE_REDIS_URL"]) as embedded:
            assert embedded.ping(), "dev.env names the embedded Redis"
        done = _run_job(env["ANYGATE_URL"], env["ANYGATE_KEY"], "hello from dev")
        assert done["status"] == "succeeded"
        gemini = _run_job(env["ANYGATE_URL"], env["ANYGATE_KEY"], "hi", "gemini-2.5-flash")
        assert gemini["status"] == "succeeded"
        assert gemini["provider"] == "gemini"
        with ConsoleHttp(env["ANYGATE_URL"]) as console:  # the banner's console, its admin key
            assert console.login(env["ANYGATE_ADMIN_KEY"]).status_code == 303
            assert "Overview" in console.page("/ui/").text
        first.terminate(timeout=40)

    with _dev(data_dir, port):
        again = read_env_file(data_dir / "dev.env")
        assert again["ANYGATE_KEY"] == env["ANYGATE_KEY"], "keys survive a restart"
        assert again["ANYGATE_ADMIN_KEY"] == env["ANYGATE_ADMIN_KEY"]
        headers = {"authorization": f"Bearer {again['ANYGATE_KEY']}"}
        kept = httpx.get(f"{again['ANYGATE_URL']}/v1/jobs/{done['id']}", headers=headers).json()
        assert kept["status"] == "succeeded", "results survive a restart (AOF)"
        assert (
            _run_job(again["ANYGATE_URL"], again["ANYGATE_KEY"], "again")["status"] == "succeeded"
        )


def test_the_banner_waits_for_workers_and_control_and_then_the_stack_is_quiet(
    tmp_path: Path,
) -> None:
    """The moment the banner is out, both pools have a live worker and control has ticked;
    afterwards an idle stack logs next to nothing (per-tick lines are debug)."""
    port = free_port()
    data_dir = tmp_path / ".anygate"
    with _dev(data_dir, port) as dev:
        env = read_env_file(data_dir / "dev.env")
        admin = {"authorization": f"Bearer {env['ANYGATE_ADMIN_KEY']}"}
        pools = httpx.get(f"{env['ANYGATE_URL']}/admin/workers", headers=admin).json()["data"]
        assert {p["id"]: p["alive"] >= 1 for p in pools} == {"openai": True, "gemini": True}
        with redis.Redis.from_url(env["ANYGATE_REDIS_URL"]) as embedded:
            ticked = KeySpace("main").control_ticked
            assert embedded.pttl(ticked) > 50_000, "control ticked within the last seconds"

        before = len(_lines(dev))
        time.sleep(IDLE_WINDOW_S)
        logged = _lines(dev)[before:]
        assert len(logged) <= IDLE_LINES_ALLOWED, "\n".join(logged)


def test_a_second_dev_on_the_folder_or_the_port_is_refused_before_it_starts_anything(
    tmp_path: Path,
) -> None:
    port = free_port()
    data_dir = tmp_path / "one"
    with _dev(data_dir, port) as first:
        env_before = (data_dir / "dev.env").read_text()
        redis_log = data_dir / "redis" / "redis.log"
        redis_log_before = redis_log.read_text()

        same_folder = _refused(data_dir, free_port())
        assert same_folder.returncode != 0
        assert (
            f"another anygate dev (pid {first.pid}) is running at http://127.0.0.1:{port} "
            f"with data dir {data_dir.resolve()}"
        ) in same_folder.stderr
        assert BANNER not in same_folder.stdout
        assert redis_log.read_text() == redis_log_before, "no second Redis on the same files"
        assert (data_dir / "dev.env").read_text() == env_before

        other = tmp_path / "two"
        same_port = _refused(other, port)
        assert same_port.returncode != 0
        assert f"port {port} on 127.0.0.1 is in use (by pid " in same_port.stderr
        assert f"started by pid {first.pid}: " in same_port.stderr, "names the running dev"
        assert same_port.stderr.rstrip().endswith("pass --port")
        assert BANNER not in same_port.stdout
        assert not (other / "redis").exists(), "no Redis started"
        assert not (other / "dev.env").exists()
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200, "first serves on"


def test_a_port_held_by_another_program_is_refused_before_anything_starts(tmp_path: Path) -> None:
    data_dir = tmp_path / ".anygate"
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        started = time.monotonic()
        refused = _refused(data_dir, port)
    assert refused.returncode != 0
    assert f"Error: port {port} on 127.0.0.1 is in use (by pid {os.getpid()}: " in refused.stderr
    assert "; pass --port" in refused.stderr
    assert BANNER not in refused.stdout
    assert "mock-provider listening" not in refused.stdout + refused.stderr
    assert not (data_dir / "redis").exists(), "no Redis started"
    assert not (data_dir / "dev.env").exists()
    assert time.monotonic() - started < 20


def test_a_config_that_does_not_load_is_refused_before_anything_starts(tmp_path: Path) -> None:
    config = tmp_path / "own.yaml"
    config.write_text(yaml.safe_dump({"queue": {"heartbeat_interval_s": "often"}}))
    data_dir = tmp_path / ".anygate"
    refused = _refused(data_dir, free_port(), ANYGATE_CONFIG=str(config))
    assert refused.returncode != 0
    assert refused.stderr.startswith("Error: ")
    assert "queue.heartbeat_interval_s" in refused.stderr
    assert not (data_dir / "redis").exists(), "no Redis started"
    assert not (data_dir / "dev.env").exists()


def test_a_killed_dev_leaves_nothing_running_and_does_not_block_the_next(tmp_path: Path) -> None:
    """SIGKILL gives a supervisor no chance to stop anything: its children end by themselves
    (the kernel signals them) and its lock goes with it."""
    port = free_port()
    data_dir = tmp_path / ".anygate"
    with _dev(data_dir, port) as first:
        keys = read_env_file(data_dir / "dev.env")["ANYGATE_KEY"]
        children = psutil.Process(first.pid).children(recursive=True)
        names = {" ".join(c.cmdline()) for c in children}
        assert len(children) == 6, names  # redis, mock provider, api, two workers, control
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        _gone, alive = psutil.wait_procs(children, timeout=40)
        assert not alive, f"outlived anygate dev: {[p.pid for p in alive]}"

    with _dev(data_dir, port):
        assert read_env_file(data_dir / "dev.env")["ANYGATE_KEY"] == keys


def test_a_part_that_dies_before_ready_stops_everything_and_is_named(tmp_path: Path) -> None:
    """A config with no ``gemini`` pool: its worker exits at start; no banner, no dev.env,
    nothing left on the port."""
    config = tmp_path / "own.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "providers": {"openai": {"kind": "openai", "api_key": "env:ANYGATE_MOCK_KEY"}},
                "models": {
                    "gpt-4o-mini": {"deployments": [{"provider": "openai", "model": "gpt-4o"}]}
                },
                "tenants": [{"id": "dev", "api_key_sha256": [hash_key("ag-own-key")]}],
            }
        )
    )
    port = free_port()
    data_dir = tmp_path / ".anygate"
    dev = ManagedProcess.start(
        _argv(data_dir, port),
        env=_clean_env(ANYGATE_CONFIG=str(config), GEMINI_API_KEY="unused"),
    )
    with dev:
        assert dev.wait(timeout=START_TIMEOUT_S) == 1
        output = dev.log_path.read_text()
        assert "anygate dev did not start: worker-gemini (pid " in output
        assert "exited with code 1 before " in output
        assert "no such provider" in output
        assert BANNER not in output
        assert not (data_dir / "dev.env").exists()
    check_port("127.0.0.1", port)  # the API it started is gone


def test_dev_durability_strict_runs_redis_with_fsync_always(tmp_path: Path) -> None:
    """``--durability strict``: the embedded Redis fsyncs before every reply, every process
    runs strict (each checked the server at start), and the demo still answers."""
    port = free_port()
    data_dir = tmp_path / ".anygate"
    with _dev(data_dir, port, "--durability", "strict") as dev:
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz").json()
        assert ready["durability"] == "strict (appendonly yes, appendfsync always)"
        assert "durability: strict (appendfsync always)" in dev.log_tail(60)
        env = read_env_file(data_dir / "dev.env")
        assert _run_job(env["ANYGATE_URL"], env["ANYGATE_KEY"], "durable")["status"] == "succeeded"
