"""``anygate submit`` and ``anygate jobs get|list|cancel|watch`` against a live stack (API, one
worker, the mock provider), run as a user runs them: a subprocess with the URL and a tenant key
in its environment (docs/cli.md#jobs)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.support.cli import run_cli, under_pty
from tests.support.configs import TENANT_KEYS
from tests.support.mock import MockControl
from tests.support.stack import Stack

ANSWER = "Mock reply to: hello there"
JOB_ID = re.compile(r"^job_[A-Za-z0-9_-]{22}$")
UNKNOWN_TOOL = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "x"}],
    "tools": [{"type": "function", "function": {"name": "known"}}],
    "tool_choice": {"type": "function", "function": {"name": "unknown"}},
}
"""A request the mock refuses with a 400: the job fails for good on its first attempt."""


def user_env(stack: Stack) -> dict[str, str]:
    return {"ANYGATE_URL": stack.url, "ANYGATE_KEY": TENANT_KEYS["acme"]}


def test_submit_prints_the_id_and_jobs_get_shows_the_job(stack: Stack, tmp_path: Path) -> None:
    env = user_env(stack)
    job_id = run_cli(
        "submit",
        "-m",
        "gpt-4o-mini",
        "hello there",
        "--metadata",
        "run=nightly",
        "--metadata",
        "team=ml",
        "--priority",
        "interactive",
        env=env,
        cwd=tmp_path,
    ).stdout.strip()
    assert JOB_ID.match(job_id), job_id
    got = json.loads(
        run_cli("jobs", "get", job_id, "--wait", "20", "--json", env=env, cwd=tmp_path).stdout
    )
    assert (got["id"], got["status"], got["priority"]) == (job_id, "succeeded", "interactive")
    assert got["metadata"] == {"run": "nightly", "team": "ml"}
    shown = run_cli("jobs", "get", job_id, env=env, cwd=tmp_path).stdout
    assert re.search(r"^status\s+succeeded\s*$", shown, re.M), shown
    assert re.search(r"^metadata\s+run=nightly, team=ml\s*$", shown, re.M), shown
    assert shown.rstrip().endswith(ANSWER)
    assert TENANT_KEYS["acme"] not in shown


def test_submit_wait_prints_the_answer_or_the_job(stack: Stack, tmp_path: Path) -> None:
    env = user_env(stack)
    assert (
        run_cli(
            "submit", "-m", "gpt-4o-mini", "hello there", "--wait", env=env, cwd=tmp_path
        ).stdout
        == ANSWER + "\n"
    )
    job = json.loads(
        run_cli(
            "submit", "-m", "gpt-4o-mini", "hello there", "--wait", "--json", env=env, cwd=tmp_path
        ).stdout
    )
    assert job["status"] == "succeeded"
    assert job["result"]["choices"][0]["message"]["content"] == ANSWER
    body = json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "from stdin"}]}
    )
    piped = run_cli("submit", "--body", "-", "--wait", env=env, cwd=tmp_path, stdin=body)
    assert piped.stdout == "Mock reply to: from stdin\n"
    vector = json.loads(
        run_cli(
            "submit",
            "--endpoint",
            "/v1/embeddings",
            "-m",
            "text-embedding-3-small",
            "a text",
            "--wait",
            env=env,
            cwd=tmp_path,
        ).stdout
    )
    assert vector["object"] == "list"
    assert vector["data"][0]["embedding"]


def test_an_idempotency_key_answers_the_same_job(stack: Stack, tmp_path: Path) -> None:
    env = user_env(stack)
    args = ("submit", "-m", "gpt-4o-mini", "once", "--idempotency-key", "cli-test-1")
    first = run_cli(*args, env=env, cwd=tmp_path).stdout
    assert run_cli(*args, env=env, cwd=tmp_path).stdout == first


def test_a_failed_job_exits_non_zero_with_its_error(stack: Stack, tmp_path: Path) -> None:
    env = user_env(stack)
    body = tmp_path / "body.json"
    body.write_text(json.dumps(UNKNOWN_TOOL), encoding="utf-8")
    done = run_cli("submit", "--body", str(body), "--wait", env=env, cwd=tmp_path, ok=False)
    assert done.returncode == 1
    assert done.stdout == ""
    assert re.search(r"job job_\S+ failed: ", done.stderr), done.stderr
    streamed = run_cli("submit", "--body", str(body), "--stream", env=env, cwd=tmp_path, ok=False)
    assert streamed.returncode == 1
    assert "failed: " in streamed.stderr


def test_bad_input_is_refused_naming_the_field(stack: Stack, tmp_path: Path) -> None:
    env = user_env(stack)
    for args, words, code in (
        (("submit", "hi"), "--model is required", 2),
        (("submit", "-m", "gpt-4o-mini"), "give a PROMPT", 2),
        (("submit", "-m", "gpt-4o-mini", "hi", "--metadata", "novalue"), "KEY=VALUE", 2),
        (("submit", "-m", "gpt-4o-mini", "hi", "--deadline", "soon"), "--deadline", 2),
        (("submit", "-m", "no-such-model", "hi"), "model", 1),
        (("submit", "--body", "-"), "--body", 2),
        (("jobs", "get", "job_nothing"), "404", 1),
        (  # sent, and refused: this stack has no webhook secret to sign with
            ("submit", "-m", "gpt-4o-mini", "hi", "--webhook-url", "http://127.0.0.1:9/hook"),
            "webhook_url",
            1,
        ),
    ):
        done = run_cli(*args, env=env, cwd=tmp_path, ok=False, stdin="[1, 2]")
        assert done.returncode == code, (args, done.stderr)
        assert words in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    no_key = run_cli(
        "submit", "-m", "gpt-4o-mini", "hi", env={"ANYGATE_URL": stack.url}, cwd=tmp_path, ok=False
    )
    assert "no tenant key found" in no_key.stderr


def test_stream_prints_the_tokens_to_a_pipe(
    stack: Stack, mock: MockControl, tmp_path: Path
) -> None:
    mock.settings(chunk_count=6, chunk_delay_ms=30)
    env = user_env(stack)
    done = run_cli("submit", "-m", "gpt-4o-mini", "hello there", "--stream", env=env, cwd=tmp_path)
    assert done.stdout == ANSWER + "\n"
    assert re.match(r"job job_\S+\n$", done.stderr), done.stderr


def test_stream_restarts_the_answer_on_a_retry(
    stack: Stack, mock: MockControl, tmp_path: Path
) -> None:
    """The upstream connection drops after three chunks: the worker retries and the answer
    starts again. A pipe keeps what it was given, so the void text ends its own line and
    stderr says why; the whole answer follows."""
    mock.settings(chunk_count=8, chunk_delay_ms=20)
    mock.fault(fault="drop", after_chunks=3, times=1)
    env = user_env(stack)
    done = run_cli("submit", "-m", "gpt-4o-mini", "hello there", "--stream", env=env, cwd=tmp_path)
    lines = done.stdout.splitlines()
    assert lines[-1] == ANSWER, done.stdout
    assert len(lines) == 2, done.stdout
    assert ANSWER.startswith(lines[0]), "the first attempt's text, cut short"
    assert lines[0] != ANSWER
    assert "retry: attempt 2 begins" in done.stderr


def test_stream_on_a_terminal_clears_the_void_text(
    stack: Stack, mock: MockControl, tmp_path: Path
) -> None:
    mock.settings(chunk_count=8, chunk_delay_ms=40)
    mock.fault(fault="drop", after_chunks=3, times=1)
    env = user_env(stack)
    with under_pty(
        "submit", "-m", "gpt-4o-mini", "hello there", "--stream", env=env, cwd=tmp_path
    ) as run:
        run.read_until("retry: attempt 2")
        assert run.proc.wait(timeout=30) == 0
        run.read_for(0.3)
    shown = [line for line in run.display if line]
    assert shown[0].startswith("job job_")
    assert "retry: attempt 2 begins" in shown[1]
    assert shown[2:] == [ANSWER], run.display
    assert "\x1b[" in run.raw.decode(), "drawn in place"


def test_jobs_list_shows_the_newest_first(stack: Stack, tmp_path: Path) -> None:
    env = user_env(stack)
    ids = [
        run_cli("submit", "-m", "gpt-4o-mini", f"n{i}", "--wait", "--json", env=env, cwd=tmp_path)
        for i in range(3)
    ]
    newest_first = [json.loads(d.stdout)["id"] for d in reversed(ids)]
    lines = run_cli(
        "jobs", "list", "--limit", "3", "--json", env=env, cwd=tmp_path
    ).stdout.splitlines()
    assert [json.loads(line)["id"] for line in lines] == newest_first
    table = run_cli("jobs", "list", "--status", "succeeded", env=env, cwd=tmp_path).stdout
    for job_id in newest_first:
        assert job_id in table
    rows = [line for line in table.splitlines() if "job_" in line]
    assert [r.split("│")[1].strip() for r in rows][:3] == newest_first
    assert all("succeeded" in r and "gpt-4o-mini" in r for r in rows)
    assert (
        run_cli("jobs", "list", "--status", "cancelled", "--json", env=env, cwd=tmp_path).stdout
        == ""
    )


def test_jobs_cancel_stops_a_queued_job(stack: Stack, tmp_path: Path) -> None:
    env = user_env(stack)
    later = "@" + str(2_000_000_000)
    stack.stop_workers("openai")  # nothing takes it: it stays queued
    job_id = run_cli(
        "submit", "-m", "gpt-4o-mini", "wait", "--deadline", later, env=env, cwd=tmp_path
    ).stdout.strip()
    assert (
        run_cli("jobs", "cancel", job_id, env=env, cwd=tmp_path).stdout == f"{job_id} cancelled\n"
    )
    got = json.loads(run_cli("jobs", "get", job_id, "--json", env=env, cwd=tmp_path).stdout)
    assert (got["status"], got["deadline"]) == ("cancelled", 2_000_000_000)
    watched = run_cli("jobs", "watch", job_id, env=env, cwd=tmp_path, ok=False)
    assert watched.returncode == 1
    assert watched.stdout.splitlines()[-1].endswith("cancelled")


def test_jobs_watch_follows_state_and_tokens(
    stack: Stack, mock: MockControl, tmp_path: Path
) -> None:
    mock.settings(chunk_count=6, chunk_delay_ms=150)
    env = user_env(stack)
    job_id = run_cli(
        "submit", "-m", "gpt-4o-mini", "hello there", env=env, cwd=tmp_path
    ).stdout.strip()
    with under_pty("jobs", "watch", job_id, env=env, cwd=tmp_path) as run:
        run.read_until("started: attempt 1")
        assert run.proc.wait(timeout=30) == 0
        run.read_for(0.3)
    shown = [line for line in run.display if line]
    assert [re.sub(r"^\d\d:\d\d:\d\d  ", "", line) for line in shown[:2]] == [
        "queued",
        f"started: attempt 1 on {shown[1].split(' on ')[-1]}",
    ]
    assert shown[2].endswith("completed")
    assert shown[3:] == [ANSWER]
    # a finished job's log is replayed; as JSON lines, every event
    events = [
        json.loads(line)
        for line in run_cli(
            "jobs", "watch", job_id, "--json", env=env, cwd=tmp_path
        ).stdout.splitlines()
    ]
    kinds = [e["event"] for e in events]
    assert kinds[:2] == ["queued", "started"]
    assert kinds[-1] == "completed"
    text = "".join(
        e["data"]["choices"][0]["delta"].get("content") or ""
        for e in events
        if e["event"] == "chunk" and e["data"]["choices"]
    )
    assert text == ANSWER


def test_ctrl_c_stops_watching_not_the_job(stack: Stack, mock: MockControl, tmp_path: Path) -> None:
    mock.settings(chunk_count=20, chunk_delay_ms=500)  # ~10 s: interrupted mid-way, however slow
    env = user_env(stack)
    job_id = run_cli(
        "submit", "-m", "gpt-4o-mini", "hello there", env=env, cwd=tmp_path
    ).stdout.strip()
    with under_pty("jobs", "watch", job_id, env=env, cwd=tmp_path) as run:
        run.read_until("started: attempt 1")
        assert run.interrupt() == 130
    assert f"stopped following {job_id}; it goes on: anygate jobs get {job_id}" in run.screen
    assert "Traceback" not in run.screen
    got = json.loads(
        run_cli("jobs", "get", job_id, "--wait", "30", "--json", env=env, cwd=tmp_path).stdout
    )
    assert got["status"] == "succeeded"
