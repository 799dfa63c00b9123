"""``anygate batch submit|get|cancel|results`` against a live stack with the control plane, run
as a user runs them (docs/cli.md#batches)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.batches import batch_line, jsonl
from tests.support.cli import clean_env, run_cli, under_pty
from tests.support.configs import TENANT_KEYS, config_tree
from tests.support.mock import MockControl
from tests.support.stack import ANYGATE, Stack, running_stack

BATCH_ID = re.compile(r"^batch_\S+$")


@pytest.fixture
def batch_stack(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> Iterator[Stack]:
    tree = config_tree(redis_server.url, namespace, mock_root=mock.url)
    tree["pools"] = {"openai": {"concurrency": 4}, "gemini": {"concurrency": 4}}
    stack_dir = tmp_path / "stack"
    stack_dir.mkdir()
    with running_stack(stack_dir, tree, ["openai", "gemini"]) as stack:
        stack.start_control()
        yield stack


def user_env(stack: Stack) -> dict[str, str]:
    return {"ANYGATE_URL": stack.url, "ANYGATE_KEY": TENANT_KEYS["acme"]}


def requests_file(tmp_path: Path, good: int, bad: int = 0) -> Path:
    lines = [batch_line(i) for i in range(good)]
    lines += [batch_line(good + i, model="no-such-model") for i in range(bad)]
    path = tmp_path / "requests.jsonl"
    path.write_bytes(jsonl(lines))
    return path


def test_submit_wait_completes_and_prints_its_summary(batch_stack: Stack, tmp_path: Path) -> None:
    env = user_env(batch_stack)
    path = requests_file(tmp_path, good=38, bad=2)
    done = run_cli(
        "batch",
        "submit",
        str(path),
        "--wait",
        "--poll",
        "0.3",
        "--metadata",
        "run=cli",
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    out = done.stdout
    found = re.search(r"^batch (batch_\S+): completed$", out, re.M)
    assert found, out
    assert "  requests: 40 total, 38 completed, 2 failed" in out
    assert re.search(r"^  elapsed:  \d+\.\ds$", out, re.M), out
    output_id = re.search(r"^  output file: (file-\S+)$", out, re.M)
    error_id = re.search(r"^  error file:  (file-\S+)$", out, re.M)
    assert output_id, out
    assert error_id, out
    assert f"batch {found.group(1)} created from requests.jsonl" in done.stderr
    batch_id = found.group(1)

    results = [
        json.loads(line)
        for line in run_cli("batch", "results", batch_id, env=env, cwd=tmp_path).stdout.splitlines()
    ]
    assert sorted(r["custom_id"] for r in results) == sorted(f"req-{i}" for i in range(38))
    assert all(r["response"]["status_code"] == 200 for r in results)
    errors = [
        json.loads(line)
        for line in run_cli(
            "batch", "results", batch_id, "--errors", env=env, cwd=tmp_path
        ).stdout.splitlines()
    ]
    assert sorted(r["custom_id"] for r in errors) == ["req-38", "req-39"]
    out_file = tmp_path / "out" / "results.jsonl"
    out_file.parent.mkdir()
    written = run_cli("batch", "results", batch_id, "--out", str(out_file), env=env, cwd=tmp_path)
    assert written.stdout == ""
    assert f"38 results written to {out_file}" in written.stderr
    assert len(out_file.read_text(encoding="utf-8").splitlines()) == 38

    shown = run_cli("batch", "get", batch_id, env=env, cwd=tmp_path).stdout
    assert shown.splitlines()[:2] == [
        f"batch {batch_id}: completed",
        "  requests: 40 total, 38 completed, 2 failed",
    ]
    raw = json.loads(run_cli("batch", "get", batch_id, "--json", env=env, cwd=tmp_path).stdout)
    assert raw["metadata"] == {"run": "cli"}
    assert raw["output_file_id"] == output_id.group(1)


def test_the_progress_bar_under_a_terminal(
    batch_stack: Stack, mock: MockControl, tmp_path: Path
) -> None:
    mock.settings(latency_ms=200)
    env = user_env(batch_stack)
    path = requests_file(tmp_path, good=60)
    with under_pty(
        "batch", "submit", str(path), "--wait", "--poll", "0.3", env=env, cwd=tmp_path
    ) as run:
        run.read_until("lines/s", "/ 60", "eta", timeout=60)
        assert run.proc.wait(timeout=90) == 0, run.screen[-2000:]
        run.read_for(0.3)
    assert "in_progress" in run.screen, "redrawn as the batch moves on"
    shown = "\n".join(run.display)
    bar = next(line for line in run.display if "/ 60" in line)
    assert re.search(
        r"100%\s+60 ok\s+0 failed\s+/ 60\s+\d+\.\d lines/s\s+elapsed \d:\d\d:\d\d\s+eta", bar
    ), bar
    assert "requests: 60 total, 60 completed, 0 failed" in shown
    assert re.search(r"batch batch_\S+: completed", shown)


def test_submit_prints_the_id_and_a_cancelled_batch_exits_non_zero(
    batch_stack: Stack, mock: MockControl, tmp_path: Path
) -> None:
    mock.settings(latency_ms=10_000)  # 100 s a batch: however loaded the machine, cancelled mid-way
    env = user_env(batch_stack)
    path = requests_file(tmp_path, good=80)
    batch_id = run_cli("batch", "submit", str(path), env=env, cwd=tmp_path).stdout.strip()
    assert BATCH_ID.match(batch_id), batch_id
    early = run_cli("batch", "results", batch_id, env=env, cwd=tmp_path, ok=False)
    assert early.returncode == 1
    assert re.search(rf"batch {batch_id} is (validating|in_progress): its results", early.stderr)
    with subprocess.Popen(
        [*ANYGATE, "batch", "submit", str(path), "--wait", "--poll", "0.3"],
        env=clean_env(env),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as waiting:
        try:
            waited_id = None
            assert waiting.stderr is not None
            first = waiting.stderr.readline()
            waited_id = re.search(r"batch (batch_\S+) created", first)
            assert waited_id, first
            for target in (batch_id, waited_id.group(1)):
                cancelled = run_cli("batch", "cancel", target, env=env, cwd=tmp_path).stdout
                assert re.fullmatch(rf"{target} (cancelling|cancelled)\n", cancelled), cancelled
            out, _err = waiting.communicate(timeout=90)
        finally:
            if waiting.poll() is None:
                waiting.kill()
                waiting.wait()
    assert waiting.returncode == 1
    assert re.search(rf"^batch {waited_id.group(1)}: cancelled$", out, re.M), out
    counts = re.search(r"requests: 80 total, (\d+) completed, (\d+) failed", out)
    assert counts, out
    assert int(counts.group(1)) < 80, "cancelled before every line ran"


def test_bad_batches_are_clear_errors(batch_stack: Stack, tmp_path: Path) -> None:
    env = user_env(batch_stack)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n", encoding="utf-8")
    for args, words, code in (
        (("batch", "submit", str(bad)), "invalid_batch_file", 1),
        (("batch", "submit", str(tmp_path / "none.jsonl")), "does not exist", 2),
        (("batch", "get", "batch_nothing"), "404", 1),
        (("batch", "results", "batch_nothing"), "404", 1),
    ):
        done = run_cli(*args, env=env, cwd=tmp_path, ok=False)
        assert done.returncode == code, (args, done.stderr)
        assert words in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr


def test_ctrl_c_stops_following_not_the_batch(
    batch_stack: Stack, mock: MockControl, tmp_path: Path
) -> None:
    mock.settings(latency_ms=5000)  # 25 s a batch: however loaded the machine, interrupted mid-way
    env = user_env(batch_stack)
    path = requests_file(tmp_path, good=40)
    with under_pty("batch", "submit", str(path), "--wait", env=env, cwd=tmp_path) as run:
        run.read_until("/ 40", "lines/s", timeout=60)
        assert run.interrupt() == 130
    mock.settings(latency_ms=0)
    found = re.search(
        r"stopped following (batch_\S+); it goes on: anygate batch get \1", run.screen
    )
    assert found, run.screen[-2000:]
    assert "Traceback" not in run.screen
    done = run_cli(
        "batch", "submit", str(path), "--wait", env=env, cwd=tmp_path, timeout=120
    )  # the stack is still serving; and the first batch ends on its own
    assert "completed" in done.stdout
    shown = run_cli("batch", "get", found.group(1), env=env, cwd=tmp_path).stdout
    assert shown.splitlines()[0] == f"batch {found.group(1)}: completed"
