"""Where the CLI's tables and live views are drawn: rich consoles on stdout or stderr."""

from __future__ import annotations

from rich.console import Console

PLAIN_WIDTH = 160
"""Columns of tables printed to a file or pipe: rich would assume 80 and fold the ids."""


def console(*, stderr: bool = False) -> Console:
    """A console that sizes itself to a terminal, and to ``PLAIN_WIDTH`` columns elsewhere
    (unless ``$COLUMNS`` says otherwise); no guessing of highlights in printed data."""
    found = Console(stderr=stderr, highlight=False)
    if not found.is_terminal and found.width == 80:  # rich's guess when nothing says
        found = Console(stderr=stderr, highlight=False, width=PLAIN_WIDTH)
    return found
