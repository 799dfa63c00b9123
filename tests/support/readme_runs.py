"""Running the README's examples as a reader does: in a fresh folder with a ``.venv``, next to
an ``anygate dev`` started there (``tests/integration/test_readme_examples.py``).

The folder gets a ``.venv`` symlink to the virtualenv the tests run in (``sys.prefix``), so
``.venv/bin/anygate``, ``.venv/bin/python`` and ``source .venv/bin/activate`` mean there what
they mean in a checkout, without a second install. The reader's shell is modelled twice: a
block that sources ``.anygate/dev.env`` itself starts from an environment with no ``ANYGATE_*``
variable (so the file must work); every other block gets what sourcing it would have set, as
the README tells the reader to do first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from anygate.ops.dev_env import read_env_file
from anygate.ops.processes import wait_until
from tests.support.processes import ManagedProcess, free_port
from tests.support.readme_blocks import Block

SOURCES_DEV_ENV = "source .anygate/dev.env"
BLOCK_TIMEOUT_S = 120.0
PROVIDER_KEYS = ("OPENAI_API_KEY", "GEMINI_API_KEY")
"""Unset for every run: with one set, ``anygate dev`` would call the real provider."""


@dataclass(frozen=True)
class Outcome:
    """What a block printed (stdout and stderr together, as a terminal shows them)."""

    returncode: int
    output: str
    command: tuple[str, ...]


def clean_environment() -> dict[str, str]:
    """This process's environment without anything that would point a block elsewhere."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("ANYGATE") and name not in PROVIDER_KEYS
    }


def block_environment(block: Block, dev_env: Mapping[str, str]) -> dict[str, str]:
    """A block that sources ``.anygate/dev.env`` itself gets no ``ANYGATE_*`` variable (the
    file must work); any other runs where it was sourced, as the README asks."""
    env = clean_environment()
    if SOURCES_DEV_ENV not in block.text:
        env.update(dev_env)
    return env


def node_missing() -> str | None:
    """Why the JavaScript example cannot run here (it needs Node's global ``fetch``: 18+)."""
    node = shutil.which("node")
    if node is None:
        return "no `node` on PATH (apt: nodejs)"
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout.strip()
    major = version.removeprefix("v").split(".", 1)[0]
    if not major.isdigit() or int(major) < 18:
        return f"node {version or '(no version)'} is older than 18"
    return None


def venv_root() -> Path:
    """The virtualenv running the tests: the README's ``.venv``."""
    if sys.prefix == sys.base_prefix:
        raise RuntimeError("the README examples run from a virtualenv (python3 -m venv .venv)")
    return Path(sys.prefix)


@dataclass
class ReaderFolder:
    """The folder a reader works in, with ``anygate dev`` running there."""

    path: Path
    dev: ManagedProcess
    url: str

    @property
    def dev_env(self) -> dict[str, str]:
        return read_env_file(self.path / ".anygate" / "dev.env")

    def run(self, block: Block) -> Outcome:
        """Run ``block`` by its language; a block's file is written into the folder first."""
        if block.lang == "bash":
            script = self.path / f"example-{block.name}.sh"
            command: Sequence[str] = ["bash", "-euo", "pipefail", str(script)]
        elif block.lang == "python":
            script = self.path / f"example-{block.name}.py"
            command = [str(self.path / ".venv" / "bin" / "python"), str(script)]
        elif block.lang == "javascript":
            script = self.path / "stream.mjs"  # the name the README gives it
            command = ["node", str(script)]
        else:
            raise ValueError(f"line {block.line}: no way to run a {block.lang!r} block")
        script.write_text(block.text, encoding="utf-8")
        done = subprocess.run(
            command,
            cwd=self.path,
            env=block_environment(block, self.dev_env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
            check=False,
        )
        return Outcome(done.returncode, done.stdout, tuple(command))


def start_reader_folder(path: Path, dev_command: Sequence[str]) -> ReaderFolder:
    """Link the virtualenv in, start ``dev_command`` (the README's, plus a free port and an
    explicit data folder) there, and wait for its banner and its ``dev.env``."""
    (path / ".venv").symlink_to(venv_root(), target_is_directory=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [*dev_command, "--port", str(port), "--data-dir", str(path / ".anygate")]
    dev = ManagedProcess.start(
        [str(path / args[0]), *args[1:]],
        env=clean_environment(),
        cwd=path,
        ready_url=f"{url}/readyz",
        timeout=90,
    )
    try:
        wait_until(
            lambda: None if "anygate is running" in dev.log_tail(200) else "no banner yet",
            what="anygate dev's banner",
            watch=[dev.child],
        )
        env_file = path / ".anygate" / "dev.env"
        wait_until(
            lambda: None if env_file.exists() else "not written yet",
            what="anygate dev's dev.env",
            watch=[dev.child],
        )
    except BaseException:
        dev.kill()
        raise
    return ReaderFolder(path, dev, url)


def contains_all(output: str, expected: Sequence[str]) -> list[str]:
    """The expected pieces the output lacks."""
    return [piece for piece in expected if piece not in output]
