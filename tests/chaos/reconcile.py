"""Every check of a chaos run, by key: the report lists them in this order, and each test of
``test_chaos.py`` asserts one."""

from __future__ import annotations

from collections.abc import Callable

from tests.chaos.client_checks import logs, no_hangs, processes, sse_order, stream_text, webhooks
from tests.chaos.evidence import Check, Evidence
from tests.chaos.job_checks import (
    attempts_on_own_faults,
    batch_lines,
    counters_zero,
    failed_while_healthy,
    lost,
    one_terminal_event,
    redelivered_in_time,
    retention,
    storm_failed_no_queued_job,
    storm_upstream_calls,
    usage_counters,
)

CHECKS: dict[str, Callable[[Evidence], Check]] = {
    "lost": lost,
    "one_terminal_event": one_terminal_event,
    "batch": batch_lines,
    "failed_while_healthy": failed_while_healthy,
    "queued_wait": storm_failed_no_queued_job,
    "storm_calls": storm_upstream_calls,
    "own_fault_attempts": attempts_on_own_faults,
    "redelivery": redelivered_in_time,
    "usage": usage_counters,
    "counters": counters_zero,
    "retention": retention,
    "stream_text": stream_text,
    "sse_order": sse_order,
    "no_hangs": no_hangs,
    "webhooks": webhooks,
    "processes": processes,
    "logs": logs,
}
