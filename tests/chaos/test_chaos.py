"""The chaos suite (tests/chaos/README.md): one run of the live stack under a mixed load through
the whole fault schedule, shared by the module; each test below is one promise the run must keep,
so a failure names the promise and the jobs that broke it.

The soak (``--soak``) runs the same load for 30 minutes with a milder schedule and requires the
memory of every process and of Redis to stay flat.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.chaos.report import REPORT_KEY
from tests.chaos.scenario import Outcome, run_scenario
from tests.chaos.settings import QUICK, SOAK
from tests.chaos.soak import Sampler

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chaos(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Outcome:
    outcome = asyncio.run(run_scenario(QUICK, tmp_path_factory.mktemp("chaos")))
    text = f"{outcome.text}\nreport: {outcome.json_path}"
    pytestconfig.stash.setdefault(REPORT_KEY, []).append(text)
    print(text)
    return outcome


def verdict(outcome: Outcome, key: str) -> None:
    check = outcome.checks[key]
    assert check.passed, check.message()


def test_no_accepted_job_is_lost(chaos: Outcome) -> None:
    """Every job a client was told of (202 body, x-anygate-job-id) exists and ended."""
    verdict(chaos, "lost")


def test_every_job_ends_exactly_once(chaos: Outcome) -> None:
    """No job's event log holds more than one terminal event."""
    verdict(chaos, "one_terminal_event")


def test_batch_lines_are_neither_lost_nor_doubled(chaos: Outcome) -> None:
    verdict(chaos, "batch")


def test_jobs_fail_only_through_injected_upstream_faults(chaos: Outcome) -> None:
    verdict(chaos, "failed_while_healthy")


def test_queued_jobs_wait_out_429s_and_open_breakers(chaos: Outcome) -> None:
    verdict(chaos, "queued_wait")


def test_upstream_calls_during_a_429_storm_stay_bounded(chaos: Outcome) -> None:
    verdict(chaos, "storm_calls")


def test_our_own_faults_spend_no_attempt(chaos: Outcome) -> None:
    verdict(chaos, "own_fault_attempts")


def test_a_killed_workers_jobs_are_redelivered_within_a_lease(chaos: Outcome) -> None:
    verdict(chaos, "redelivery")


def test_usage_counters_equal_the_jobs_usage(chaos: Outcome) -> None:
    verdict(chaos, "usage")


def test_queue_counters_return_to_zero(chaos: Outcome) -> None:
    verdict(chaos, "counters")


def test_redis_returns_to_its_baseline_after_retention(chaos: Outcome) -> None:
    verdict(chaos, "retention")


def test_streamed_answers_never_mix_attempts(chaos: Outcome) -> None:
    verdict(chaos, "stream_text")


def test_job_event_stream_ids_are_sent_once_in_order(chaos: Outcome) -> None:
    verdict(chaos, "sse_order")


def test_no_request_hangs_and_refusals_are_fast(chaos: Outcome) -> None:
    verdict(chaos, "no_hangs")


def test_webhooks_are_delivered_signed(chaos: Outcome) -> None:
    verdict(chaos, "webhooks")


def test_no_process_exits_on_its_own(chaos: Outcome) -> None:
    verdict(chaos, "processes")


def test_no_process_logs_a_traceback(chaos: Outcome) -> None:
    verdict(chaos, "logs")


def test_soak_keeps_memory_flat(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """30 minutes of the mixed load with a milder schedule: RSS of every process and Redis's
    used_memory flat, and every promise above kept."""
    if not pytestconfig.getoption("--soak"):
        pytest.skip("the 30-minute soak runs only with --soak")
    sampler = Sampler()
    outcome = asyncio.run(run_scenario(SOAK, tmp_path_factory.mktemp("soak"), sampler.run))
    text = f"{outcome.text}\nmemory:\n{sampler.printed()}\nreport: {outcome.json_path}"
    pytestconfig.stash.setdefault(REPORT_KEY, []).append(text)
    growing = [f.line() for f in sampler.verdicts() if f.judged and not f.flat]
    broken = [c.message() for c in outcome.checks.values() if not c.passed]
    assert not growing, "memory grows:\n" + "\n".join(growing)
    assert not broken, "\n".join(broken)
