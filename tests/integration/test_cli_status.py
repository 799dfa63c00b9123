"""``GET /admin/deployments`` and ``anygate status`` against a live stack: a paused pool with a
job waiting in its lane, a registered worker, one deployment whose breaker is open and one
cooling down after a 429, as the workers record them in Redis (docs/cli.md#status)."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from anygate.broker import Broker, create_redis
from anygate.config import parse_config
from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.admin import ADMIN_KEY, JOB, admin_tree, as_admin, keyed
from tests.support.cli import clean_env, ctrl_c_as_at_a_terminal, run_cli, under_pty
from tests.support.configs import TENANT_KEYS
from tests.support.mock import MockControl
from tests.support.stack import ANYGATE, Stack, running_stack

OPEN_DEP = "gemini:gemini-2.5-flash"
COOLING_DEP = "openai:text-embedding-3-small"


@pytest.fixture
def status_stack(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> Iterator[Stack]:
    tree = admin_tree(redis_server.url, namespace, mock.url)
    tree["queue"]["breaker"] = {"consecutive_failures": 2, "cooldown_s": 120}
    with running_stack(tmp_path, tree, ["openai"]) as stack:
        yield stack


@pytest.fixture
async def troubled(status_stack: Stack) -> AsyncIterator[Stack]:
    """The openai pool paused with one job waiting; one breaker open, one deployment cooling
    down (what a worker does on failures and a 429, through the same scripts)."""
    config = parse_config(status_stack.tree)
    redis = create_redis(config.redis)
    broker = Broker(redis, config)
    try:
        async with as_admin(status_stack) as admin_client:
            paused = await admin_client.post("/admin/pools/openai/pause")
            assert paused.status_code == 200, paused.text
        async with status_stack.client() as client:
            assert (await client.post("/v1/jobs", json=JOB)).status_code == 202
        states = [await broker.report_failure(OPEN_DEP, f"f{i}") for i in range(2)]
        assert states[-1] == "open"
        await broker.cool_down(COOLING_DEP, 90)
    finally:
        await redis.aclose()
    return status_stack


def admin_env(stack: Stack) -> dict[str, str]:
    """What a user's shell would hold: the URL and the admin key, and no Redis anywhere."""
    return {"ANYGATE_URL": stack.url, "ANYGATE_ADMIN_KEY": ADMIN_KEY}


async def test_admin_deployments_reports_breakers_and_cool_downs(troubled: Stack) -> None:
    async with as_admin(troubled) as admin_client:
        answer = await admin_client.get("/admin/deployments")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["object"] == "list"
    assert body["breaker_enabled"] is True
    found = {d["id"]: d for d in body["data"]}
    configured = {
        f"{dep['provider']}:{dep['model']}"
        for route in troubled.tree["models"].values()
        for dep in route["deployments"]
    }
    assert sorted(found) == sorted(configured), "each deployment once"
    opened = found[OPEN_DEP]
    assert (opened["state"], opened["breaker"], opened["pool"]) == ("open", "open", "gemini")
    assert opened["aliases"] == ["gemini-2.5-flash"]  # a fallback alias is not listed
    assert 100 < opened["breaker_open_for_s"] <= 120
    cooling = found[COOLING_DEP]
    assert (cooling["state"], cooling["breaker"]) == ("cooling_down", "closed")
    assert 80 < cooling["cooling_down_for_s"] <= 90
    calm = found["openai:gpt-4o-mini"]
    assert (calm["state"], calm["breaker"], calm["breaker_open_for_s"]) == ("ok", "closed", None)
    assert calm["recent_failures"] is False


async def test_admin_deployments_is_for_operators_only(status_stack: Stack) -> None:
    async with keyed(status_stack, None) as anonymous:
        assert (await anonymous.get("/admin/deployments")).status_code == 401
    async with keyed(status_stack, TENANT_KEYS["acme"]) as tenant:
        assert (await tenant.get("/admin/deployments")).status_code == 403


def test_status_once_prints_one_frame_without_a_terminal(troubled: Stack, tmp_path: Path) -> None:
    done = run_cli("status", env=admin_env(troubled), cwd=tmp_path)
    out = done.stdout
    for shown in ("Pools", "openai", "gemini", "paused", "acme", "standard", OPEN_DEP):
        assert shown in out, out
    assert "\x1b[" not in out, "no escape sequences in a pipe"
    assert ADMIN_KEY not in out + done.stderr
    lane = next(line for line in out.splitlines() if "acme" in line and "standard" in line)
    assert lane.split("│")[4].strip() == "1", lane  # depth
    deployment = next(line for line in out.splitlines() if OPEN_DEP in line)
    assert "open" in deployment.split("│")[4]


def test_status_renders_live_under_a_terminal_until_ctrl_c(troubled: Stack, tmp_path: Path) -> None:
    env = admin_env(troubled)
    with under_pty("status", "--interval", "0.3", env=env, cwd=tmp_path) as run:
        screen = run.read_until(
            "Pools", "Lanes waiting", "Workers", "Deployments", "Ctrl-C", OPEN_DEP, "acme"
        )
        assert "\x1b[" in run.raw.decode(), "drawn with terminal escapes"
        assert "cooling_down" in screen
        worker_line = next(line for line in screen.splitlines() if "ago" in line)
        assert "openai" in worker_line
        assert "0/8" in worker_line, worker_line  # busy/concurrency of the one worker
        frames = screen.count("updated ")
        run.read_for(1.2)
        assert run.screen.count("updated ") > frames, "the view refreshes"
        code = run.interrupt()
    assert code == 0, run.screen[-2000:]
    assert "Traceback" not in run.screen
    assert "KeyboardInterrupt" not in run.screen


def test_status_says_what_is_missing(tmp_path: Path) -> None:
    done = run_cli("status", "--once", cwd=tmp_path, ok=False)
    assert done.returncode == 1
    assert "ANYGATE_URL" in done.stderr
    assert str(tmp_path / ".anygate" / "dev.env") in done.stderr
    assert "Traceback" not in done.stderr


def test_status_with_a_wrong_admin_key_is_refused_without_echoing_it(
    status_stack: Stack, tmp_path: Path
) -> None:
    wrong = "ag-wrong-admin-key-000000000000"
    env = {"ANYGATE_URL": status_stack.url, "ANYGATE_ADMIN_KEY": wrong}
    done = run_cli("status", "--once", env=env, cwd=tmp_path, ok=False)
    assert done.returncode == 1
    assert "401" in done.stderr
    assert wrong not in done.stderr + done.stdout


def test_status_interrupt_is_clean_even_while_the_gateway_is_down(tmp_path: Path) -> None:
    """No gateway at the URL: the live view says so and keeps trying; Ctrl-C still ends it."""
    env = {"ANYGATE_URL": "http://127.0.0.1:9", "ANYGATE_ADMIN_KEY": ADMIN_KEY}
    with under_pty("status", "--watch", "--interval", "0.3", env=env, cwd=tmp_path) as run:
        run.read_until("cannot refresh", "cannot reach the gateway")
        assert run.interrupt() == 0


def test_watch_into_a_pipe_prints_frame_after_frame(status_stack: Stack, tmp_path: Path) -> None:
    with subprocess.Popen(
        [*ANYGATE, "status", "--watch", "--interval", "0.3"],
        env=clean_env(admin_env(status_stack)),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_as_at_a_terminal,  # noqa: PLW1509 - a signal disposition, no locks
    ) as proc:
        try:
            assert proc.stdout is not None
            headers = 0
            while headers < 3:
                line = proc.stdout.readline()
                assert line, "the output ended"
                headers += line.startswith("anygate http")
            proc.send_signal(signal.SIGINT)
            _out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
