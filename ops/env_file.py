"""Reading an ``export NAME=value`` file as a shell would assign it: ``anygate dev``'s
``dev.env`` (docs/cli.md), read back by ``anygate dev`` itself, by the CLI and by the tests.

Standard library only, so a CLI command that reads the file imports nothing of the server.
"""

from __future__ import annotations

import shlex


def parse_env_file(text: str) -> dict[str, str]:
    """``export NAME=value`` (``export`` optional, values may be shell-quoted; blank lines and
    ``#`` comments skipped). A line that is not an assignment is ignored, as a shell would
    run it rather than assign."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.removeprefix("export ").partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            continue
        try:
            words = shlex.split(value, comments=True)
        except ValueError:  # an unbalanced quote: take the text as written
            words = [value.strip()]
        values[name] = words[0] if words else ""
    return values
