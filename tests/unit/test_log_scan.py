"""What the tests' log check counts as an error, on lines taken from our processes' real logs."""

from __future__ import annotations

import json

import pytest

from tests.support.log_scan import LogExpectation, LogFinding, describe, judge, scan

ARQ_FAILED = """\
  0.50s → webhook:job_B3:deliver_webhook('http://127.0.0.1:43977/job-done', b'{"type"…) try=3
  0.05s ! webhook:job_B3:deliver_webhook failed, TypeError: meth() got multiple values for argument 'event'
Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/arq/worker.py", line 599, in run_job
    result = await asyncio.wait_for(task, timeout_s)
             ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/work/workers/webhooks.py", line 63, in post_webhook
    log.info("webhook delivered", delivery=delivery_id, event=event, attempt=attempt)
TypeError: meth() got multiple values for argument 'event'
shutdown on SIGTERM ◆ 10 jobs complete ◆ 1 failed ◆ 2 retries ◆ 0 ongoing to cancel"""  # noqa: E501

UVICORN = """\
ERROR:    Exception in ASGI application
Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/uvicorn/protocols/http/httptools_impl.py", line 420, in run_asgi
    result = await app(  # type: ignore[func-returns-value]
  File "/tmp/uv.py", line 11, in app
    raise RuntimeError("kaput")
RuntimeError: kaput
{"worker_id": "openai-1", "event": "worker stopped", "level": "info"}"""  # noqa: E501

ASYNCIO = """\
Task exception was never retrieved
future: <Task finished name='Task-2' coro=<boom() done, defined at /tmp/asy.py:2> exception=ValueError('boom')>
Traceback (most recent call last):
  File "/tmp/asy.py", line 2, in boom
    async def boom(): raise ValueError("boom")
ValueError: boom
Exception in callback <function main.<locals>.<lambda> at 0x7fcf5f90a5c0>
handle: <Handle main.<locals>.<lambda>>
Traceback (most recent call last):
  File "uvloop/cbhandles.pyx", line 64, in uvloop.loop.Handle._run
ZeroDivisionError: division by zero"""  # noqa: E501

CHAINED = """\
Traceback (most recent call last):
  File "a.py", line 1, in f
KeyError: 'x'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "a.py", line 3, in g
ValueError: no x

next line of the log"""

QUIET = [
    "Starting worker for 4 functions: deliver_webhook, cron:prune_job_indexes",
    "redis_version=7.0.15 mem_usage=1.55M clients_connected=9 db_keys=13",
    "  0.50s → cron:drive_batches()",
    "  0.00s ← cron:drive_batches ● ",
    "  0.09s ↻ webhook:job_B3:deliver_webhook retrying job in 0.19s",
    "  1.00s ↻ job_1:f cancelled, will be run again",
    "shutdown on SIGTERM ◆ 10 jobs complete ◆ 1 failed ◆ 2 retries ◆ 0 ongoing to cancel",
    "anygate mock-provider listening on http://127.0.0.1:47993",
    "INFO:     Started server process [123]",
    "WARNING:  Invalid HTTP request received.",
    json.dumps({"pool": "openai", "event": "worker started", "level": "info"}),
    json.dumps({"job_id": "job_1", "event": "job failed", "error": "x", "level": "info"}),
    json.dumps({"delivery": "dlv_1", "event": "webhook abandoned", "level": "warning"}),
    "{not json, and no error either",
    "",
]


def _json(**event: object) -> str:
    return json.dumps(event)


class TestScan:
    def test_quiet_lines_are_no_error(self) -> None:
        """Job outcomes, retries, warnings and start-up chatter are not errors."""
        assert scan(QUIET) == []

    def test_arq_failed_job_comes_with_its_traceback(self) -> None:
        [finding] = scan(ARQ_FAILED.splitlines())
        assert finding.kind == "arq"
        assert finding.line_no == 2
        assert finding.lines[0].endswith("argument 'event'")
        assert finding.lines[-1] == "TypeError: meth() got multiple values for argument 'event'"
        assert len(finding.lines) == 8, "the shutdown summary after it is not part of it"

    def test_arq_max_retries_exceeded(self) -> None:
        [finding] = scan(["  5.20s ! webhook:job_1:deliver_webhook max retries 9 exceeded"])
        assert finding.kind == "arq"

    def test_uvicorn_exception_in_asgi_application(self) -> None:
        [finding] = scan(UVICORN.splitlines())
        assert finding.kind == "uvicorn"
        assert finding.lines[0] == "ERROR:    Exception in ASGI application"
        assert finding.lines[-1] == "RuntimeError: kaput"

    def test_uvicorn_error_line_without_traceback(self) -> None:
        line = "ERROR:    [Errno 98] error while attempting to bind on address"
        assert [f.kind for f in scan([line])] == ["uvicorn"]

    def test_asyncio_handler_reports_keep_their_context_line_and_traceback(self) -> None:
        first, second = scan(ASYNCIO.splitlines())
        assert (first.kind, first.line_no, first.lines[-1]) == ("asyncio", 1, "ValueError: boom")
        assert first.lines[1].startswith("future: <Task finished")
        assert (second.kind, second.line_no) == ("asyncio", 7)
        assert second.lines[-1] == "ZeroDivisionError: division by zero"

    def test_a_bare_traceback_spans_its_chained_exceptions(self) -> None:
        [finding] = scan(CHAINED.splitlines())
        assert finding.kind == "traceback"
        assert finding.lines[-1] == "ValueError: no x"
        assert "During handling of the above exception" in finding.text

    def test_structlog_error_event_with_its_exception_unfolded(self) -> None:
        line = _json(
            request_id="r1",
            event="unhandled error",
            level="error",
            exception='Traceback (most recent call last):\n  File "x.py", line 1\nKeyError: 1',
        )
        [finding] = scan([line])
        assert finding.kind == "structlog"
        assert finding.lines == (
            line,
            "Traceback (most recent call last):",
            '  File "x.py", line 1',
            "KeyError: 1",
        )

    @pytest.mark.parametrize("level", ["error", "critical", "ERROR"])
    def test_structlog_event_at_error_level(self, level: str) -> None:
        assert len(scan([_json(event="batch tick failed", level=level)])) == 1

    def test_structlog_warning_carrying_an_exception(self) -> None:
        assert len(scan([_json(event="x", level="warning", exception="Traceback...")])) == 1

    def test_an_error_line_does_not_swallow_the_next_event(self) -> None:
        failed = "  0.01s ! job_1:f failed, KeyError: 'x'"
        event = _json(event="unhandled error", level="error", exception="Traceback (most...")
        assert [(f.kind, f.lines) for f in scan([failed, event])] == [
            ("arq", (failed,)),
            ("structlog", (event, "Traceback (most...")),
        ]

    def test_other_fatal_lines(self) -> None:
        lines = ["Fatal Python error: Segmentation fault", "Task was destroyed but it is pending!"]
        assert [f.kind for f in scan(lines)] == ["fatal", "asyncio"]

    def test_line_numbers_continue_from_an_earlier_read(self) -> None:
        [finding] = scan(["ok", "ERROR:    boom"], first_line_no=41)
        assert finding.line_no == 42


class TestJudge:
    FINDING = LogFinding(3, "arq", ("  0.05s ! job:f failed, ConnectionError: gone",))

    def test_an_expectation_allows_the_error_it_names_only(self) -> None:
        named = LogExpectation(r"ConnectionError: gone")
        other = LogExpectation(r"TimeoutError")
        unexpected, used = judge([self.FINDING], "worker", [named, other])
        assert unexpected == []
        assert used == {named}

    def test_an_expectation_for_another_process_kind_does_not_apply(self) -> None:
        unexpected, used = judge(
            [self.FINDING], "control", [LogExpectation("ConnectionError", process="api")]
        )
        assert unexpected == [self.FINDING]
        assert used == set()

    @pytest.mark.parametrize("blanket", ["", ".*", "x?", "(?:)", "^"])
    def test_a_pattern_matching_anything_is_refused(self, blanket: str) -> None:
        with pytest.raises(ValueError, match="matches anything"):
            LogExpectation(blanket)


def test_describe_keeps_the_head_and_the_exception_of_a_long_traceback() -> None:
    lines = ("Traceback (most recent call last):", *[f"  frame {i}" for i in range(100)], "E: x")
    text = describe(LogFinding(7, "traceback", lines), max_lines=20)
    assert text.startswith("  line 7 (traceback):\n    Traceback (most recent call last):")
    assert text.endswith("    E: x")
    assert "... (82 lines) ..." in text
