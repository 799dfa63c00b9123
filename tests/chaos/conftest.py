"""Print the chaos report at the end of the session, whatever the checks' verdicts."""

from __future__ import annotations

import pytest

from tests.chaos.report import REPORT_KEY


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    for text in config.stash.get(REPORT_KEY, []):
        terminalreporter.write_sep("=", "chaos report")
        terminalreporter.write_line(text)
