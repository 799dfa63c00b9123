"""The log check end to end: a pytest session of its own, with this suite's hooks and fixtures,
starting real processes that log a traceback, shows which test each error lands on and how a
test declares the one it provokes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CONFTEST = """
from tests.conftest import process_logs_checked, pytest_configure, pytest_runtest_call
"""

CHILD = r"""
import os, signal, sys, time

def crash(*_):
    print('Traceback (most recent call last):\n  File "w.py", line 1\nValueError: boom',
          file=sys.stderr, flush=True)

mode = sys.argv[1]
if mode == "crash":
    crash()
elif mode == "crash-on-sigterm":
    signal.signal(signal.SIGTERM, lambda *_: (crash(), sys.exit(1)))
elif mode == "crash-on-trigger":
    while not os.path.exists(sys.argv[2]):
        time.sleep(0.02)
    crash()
print("up", flush=True)
time.sleep(60)
"""

TESTS = r"""
import sys
import time
from pathlib import Path

import pytest

from tests.support.processes import ManagedProcess

CHILD = str(Path(__file__).with_name("child.py"))


def start(*args):
    return ManagedProcess.start([sys.executable, CHILD, *args])


def wait_logged(proc, text="up"):
    deadline = time.monotonic() + 10
    while text not in proc.log_path.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_unexpected_traceback_fails_the_test():
    with start("crash") as proc:
        wait_logged(proc)


@pytest.mark.expect_log(r"ValueError: boom")
def test_marker_allows_the_named_error():
    with start("crash") as proc:
        wait_logged(proc)


def test_process_expectation_allows_the_named_error():
    with start("crash").expect_log(r"ValueError: boom") as proc:
        wait_logged(proc)


@pytest.mark.expect_log(r"KeyError")
def test_marker_for_another_error_does_not_allow_this_one():
    with start("crash") as proc:
        wait_logged(proc)


@pytest.mark.expect_log(r"ValueError: never")
def test_expected_error_that_never_came():
    pass


def test_sigkill_is_no_error():
    proc = start("quiet")
    wait_logged(proc)
    proc.kill()


@pytest.fixture
def dies_badly_on_sigterm():
    proc = start("crash-on-sigterm")
    wait_logged(proc)
    yield proc
    proc.terminate()


def test_shutdown_traceback_lands_on_the_test_at_teardown(dies_badly_on_sigterm):
    pass


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    trigger = tmp_path_factory.mktemp("t") / "go"
    with start("crash-on-trigger", str(trigger)) as proc:
        yield proc, trigger


def test_shared_process_quiet_during_this_test(shared):
    time.sleep(0.2)


def test_shared_process_errs_during_this_test(shared):
    proc, trigger = shared
    trigger.touch()
    wait_logged(proc, "ValueError: boom")


def test_shared_process_quiet_again(shared):
    pass
"""


def test_each_error_lands_on_its_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_inner=TESTS, child=CHILD)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:asyncio", "-rA", timeout=120
    )
    summary: dict[str, set[str]] = {"PASSED": set(), "FAILED": set(), "ERROR": set()}
    for line in result.outlines:
        outcome, _, rest = line.partition(" ")
        if outcome in summary:
            summary[outcome].add(rest.split(" ")[0].removeprefix("test_inner.py::"))
    assert summary == {
        "PASSED": {
            "test_marker_allows_the_named_error",
            "test_process_expectation_allows_the_named_error",
            "test_sigkill_is_no_error",
            "test_shared_process_quiet_during_this_test",
            "test_shared_process_quiet_again",
            # their bodies passed; the check failed them at teardown
            "test_expected_error_that_never_came",
            "test_shutdown_traceback_lands_on_the_test_at_teardown",
        },
        "FAILED": {
            "test_unexpected_traceback_fails_the_test",
            "test_marker_for_another_error_does_not_allow_this_one",
            "test_shared_process_errs_during_this_test",
        },
        "ERROR": {
            "test_marker_for_another_error_does_not_allow_this_one",  # no KeyError came
            "test_expected_error_that_never_came",
            "test_shutdown_traceback_lands_on_the_test_at_teardown",
        },
    }, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_expected_error_that_never_came*",
            "the test expected errors that no process logged: /ValueError: never/",
            "*ERROR at teardown of test_shutdown_traceback_lands_on_the_test_at_teardown*",
            "python process * (*python* */child.py crash-on-sigterm) logged 1 unexpected error(s)*",
            "  line 2 (traceback):",
            "    Traceback (most recent call last):",
            '      File "w.py", line 1',
            "    ValueError: boom",
        ],
        consecutive=False,
    )
