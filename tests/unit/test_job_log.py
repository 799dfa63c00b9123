"""Job state changes in workers log one line each (docs/operations.md#logs), with one event name
per change and the same identifying fields; a change that did not happen (another attempt or a
cancel got there first) is not announced as if it had, and a failure is never an ``error``."""

from __future__ import annotations

from typing import Any

import pytest
import structlog

from anygate.broker import ClaimedJob
from anygate.broker.job_log import JobLog, deployment_of
from anygate.config import Priority
from tests.support.configs import build_config

PLAN = "chat|openai|gpt-4o-mini;chat|gemini|gemini-2.0-flash"
JOB = ClaimedJob(
    "job_1", 3, "acme", "/v1/chat/completions", "chat", b"{}", Priority.STANDARD, False, PLAN
)
CONFIG = build_config("redis://127.0.0.1:9/0", "t")
LOG = JobLog(CONFIG)
FIELDS = {
    "job_id": "job_1",
    "tenant": "acme",
    "model": "chat",
    "deployment": "openai:gpt-4o-mini",
    "attempt": 3,
    "pool": "openai",
}


def logged(fn: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    with structlog.testing.capture_logs() as logs:
        fn(*args, **kwargs)
    return [dict(line) for line in logs]


def test_started_logs_each_claimed_job() -> None:
    lines = logged(LOG.started, [JOB, JOB], "openai", "w1")
    assert [line["event"] for line in lines] == ["job started", "job started"]
    assert lines[0].items() >= FIELDS.items()
    assert lines[0]["worker_id"] == "w1"


def test_succeeded_and_failed() -> None:
    ok = logged(
        LOG.finished, JOB, "openai", recorded=True, succeeded=True, error=None, cost_usd=0.25
    )
    assert [(line["event"], line["log_level"], line["cost_usd"]) for line in ok] == [
        ("job succeeded", "info", 0.25)
    ]
    error = {"type": "upstream_error", "code": "invalid_request", "message": "nope"}
    bad = logged(
        LOG.finished, JOB, "openai", recorded=True, succeeded=False, error=error, cost_usd=None
    )
    assert [(line["event"], line["log_level"], line["reason"]) for line in bad] == [
        ("job failed", "warning", "invalid_request")
    ]
    assert bad[0].items() >= FIELDS.items()


@pytest.mark.parametrize(("refund", "event"), [(False, "job retried"), (True, "job requeued")])
def test_requeue_is_a_retry_when_it_spends_an_attempt(refund: bool, event: str) -> None:
    lines = logged(
        LOG.requeued,
        JOB,
        "openai",
        recorded=True,
        reason="server_error",
        refund_attempt=refund,
        delay_s=1.23456,
        to_step=None,
    )
    assert [(line["event"], line["reason"], line["delay_s"]) for line in lines] == [
        (event, "server_error", 1.235)
    ]
    assert "to_deployment" not in lines[0]
    assert lines[0].items() >= FIELDS.items()


def test_a_fallback_names_the_next_deployment() -> None:
    lines = logged(
        LOG.requeued,
        JOB,
        "openai",
        recorded=True,
        reason="fallback",
        refund_attempt=False,
        delay_s=0,
        to_step=1,
    )
    assert lines[0]["to_deployment"] == "gemini:gemini-2.0-flash"


def test_a_superseded_change_is_not_announced() -> None:
    finish = logged(
        LOG.finished, JOB, "openai", recorded=False, succeeded=True, error=None, cost_usd=None
    )
    requeue = logged(
        LOG.requeued,
        JOB,
        "openai",
        recorded=False,
        reason="x",
        refund_attempt=True,
        delay_s=0,
        to_step=None,
    )
    assert [line["log_level"] for line in finish + requeue] == ["debug", "debug"]


def test_cancelled_and_abandoned() -> None:
    assert logged(LOG.abandoned, JOB, "openai", "cancelled")[0]["event"] == "job cancelled"
    assert logged(LOG.abandoned, JOB, "openai", "lease lost")[0]["event"] == "job abandoned"


def test_a_job_without_a_plan_is_named_by_its_aliases_deployment_in_the_pool() -> None:
    def bare(model: str) -> ClaimedJob:
        return ClaimedJob("j", 1, "t", "/v1/chat/completions", model, b"{}", Priority.BATCH, False)

    assert deployment_of(bare("gpt-4o-mini"), "openai", CONFIG) == "openai:gpt-4o-mini"
    assert deployment_of(bare("gone-model"), "openai", CONFIG) == "openai"
