"""The pure parts of the job and batch commands: option parsing (ops/cli_client.py), the
request a prompt makes (ops/cli_jobs.py), how jobs and events read (ops/job_view.py), what a
pipe receives from a stream with a restart (ops/job_stream.py) and a batch's summary
(ops/cli_batch.py)."""

from __future__ import annotations

import io
from typing import Any

import click
import pytest
from rich.console import Console

from anygate.client import Batch, Job, JobEvent
from anygate.ops.cli_batch import summary_lines
from anygate.ops.cli_client import parse_deadline, parse_duration, parse_metadata
from anygate.ops.cli_jobs import request_body
from anygate.ops.job_stream import StreamView
from anygate.ops.job_view import TailText, answer_of, event_line, job_fields

NOW = 1_800_000_000.0


def test_option_values() -> None:
    assert parse_metadata(("a=1", "b=x=y", "c=")) == {"a": "1", "b": "x=y", "c": ""}
    assert parse_metadata(()) is None
    with pytest.raises(click.BadParameter, match="KEY=VALUE"):
        parse_metadata(("novalue",))
    with pytest.raises(click.BadParameter, match="KEY=VALUE"):
        parse_metadata(("=v",))
    assert [parse_duration(t, "--x") for t in ("90", "90s", "1.5m", "2h", "1d")] == [
        90,
        90,
        90,
        7200,
        86400,
    ]
    with pytest.raises(click.BadParameter, match="expected a duration") as caught:
        parse_duration("10 minutes", "--x")
    assert caught.value.param_hint == "--x"
    assert parse_deadline("10m", now=NOW) == NOW + 600
    assert parse_deadline("@1767225600") == 1767225600
    assert parse_deadline(None) is None
    with pytest.raises(click.BadParameter, match="unix seconds") as caught:
        parse_deadline("@soon")
    assert caught.value.param_hint == "--deadline"


def test_the_request_a_prompt_or_a_body_makes(tmp_path: Any) -> None:
    chat = "/v1/chat/completions"
    assert request_body("hi", None, "m", chat) == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
    }
    assert request_body("text", None, "e", "/v1/embeddings") == {"model": "e", "input": "text"}
    body = tmp_path / "b.json"
    body.write_text('{"model": "old", "messages": []}', encoding="utf-8")
    assert request_body(None, str(body), "new", chat) == {"model": "new", "messages": []}
    assert request_body(None, str(body), None, chat)["model"] == "old"
    with pytest.raises(click.UsageError, match="not both"):
        request_body("hi", str(body), None, chat)
    with pytest.raises(click.UsageError, match="--model is required"):
        request_body("hi", None, None, chat)
    body.write_text("[1]", encoding="utf-8")
    with pytest.raises(click.BadParameter, match="JSON object"):
        request_body(None, str(body), None, chat)
    with pytest.raises(click.BadParameter, match="cannot read"):
        request_body(None, str(tmp_path / "none.json"), None, chat)


def chunk(event_id: str, text: str, attempt: int = 1) -> JobEvent:
    data = {"choices": [{"index": 0, "delta": {"content": text}}], "attempt": attempt}
    return JobEvent(event_id, "chunk", data)


def test_events_read_as_state_changes() -> None:
    assert event_line(JobEvent("1-0", "queued", {})) == "queued"
    started = JobEvent("1-1", "started", {"attempt": 1, "worker": "openai-ab12"})
    assert event_line(started) == "started: attempt 1 on openai-ab12"
    retry = JobEvent("1-2", "retry", {"attempt": 2, "reason": "lease_expired"})
    assert event_line(retry) == "retry: attempt 2 begins (lease_expired); the answer restarts"
    failed = JobEvent("1-3", "failed", {"error": {"message": "boom", "code": "upstream_error"}})
    assert event_line(failed) == "failed: boom (upstream_error)"
    assert event_line(chunk("1-4", "x")) is None


def test_a_pipe_gets_the_tokens_and_a_restart_on_a_new_line() -> None:
    out, err = io.StringIO(), io.StringIO()
    view = StreamView(Console(file=out), Console(file=err), states=False)
    events = [
        JobEvent("1000-0", "queued", {}),
        JobEvent("1000-1", "started", {"attempt": 1}),
        chunk("1000-2", "Hel"),
        chunk("1000-3", "lo w"),
        JobEvent("1000-4", "retry", {"attempt": 2, "reason": "fallback"}),
        JobEvent("1000-5", "started", {"attempt": 2}),
        chunk("1000-6", "Hello", 2),
        chunk("1000-7", " world", 2),
        JobEvent("1000-8", "completed", {"status": "succeeded"}),
        chunk("1000-9", "never read"),
    ]
    with view:
        ended = view.show(events)
    assert ended is not None
    assert ended.type == "completed"
    assert out.getvalue() == "Hello w\nHello world\n"
    assert "retry: attempt 2 begins (fallback)" in err.getvalue()
    assert "started" not in err.getvalue() + out.getvalue()
    assert view.answer.text == "Hello world"


def test_watching_to_a_pipe_puts_state_changes_on_their_own_lines() -> None:
    out = io.StringIO()
    view = StreamView(Console(file=out), Console(file=io.StringIO()), states=True)
    with view:
        view.show(
            [
                JobEvent("1000-0", "queued", {}),
                chunk("1000-1", "Hi"),
                JobEvent("1000-2", "failed", {"error": {"message": "gone"}}),
            ]
        )
    lines = [line.split("  ", 1)[-1] for line in out.getvalue().splitlines()]
    assert lines == ["queued", "Hi", "failed: gone"]


def test_a_long_answer_shows_its_newest_lines_while_it_streams() -> None:
    text = "\n".join(f"line {i}" for i in range(50))
    console = Console(file=io.StringIO(), width=40, height=10, record=True)
    console.print(TailText(text, reserve=2))
    shown = console.export_text().splitlines()
    assert shown[0] == "…"
    assert shown[-1] == "line 49"
    assert len(shown) == 10 - 2 - 1


def job(**fields: Any) -> Job:
    return Job.from_api({"id": "job_1", "status": "succeeded", **fields})


def test_a_job_reads_as_its_set_fields() -> None:
    chat = job(result={"choices": [{"message": {"content": "Hi!"}}]}, created_at=NOW - 90)
    assert answer_of(chat) == "Hi!"
    assert (
        answer_of(job(result={"data": [{"embedding": [0.5]}]})) == '{"data":[{"embedding":[0.5]}]}'
    )
    fields = dict(job_fields(chat, now=NOW))
    assert fields["status"] == "succeeded"
    assert fields["created"].endswith("(1m30s ago)")
    assert "error" not in fields
    assert "started" not in fields
    failed = job(status="failed", error={"message": "no", "type": "upstream_error"})
    assert dict(job_fields(failed))["error"] == "no (upstream_error)"


def test_a_batch_summary() -> None:
    batch = Batch.from_api(
        {
            "id": "batch_1",
            "status": "failed",
            "request_counts": {"total": 3, "completed": 1, "failed": 2},
            "errors": {"data": [{"message": "line 2: bad"}]},
        }
    )
    assert summary_lines(batch, 2.04) == [
        "batch batch_1: failed",
        "  requests: 3 total, 1 completed, 2 failed",
        "  elapsed:  2.0s",
        "  output file: -",
        "  error file:  -",
        "  error: line 2: bad",
    ]
