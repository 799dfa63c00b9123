"""The repository's standing promises, checked by the same command that runs every test:
ruff and ``mypy --strict`` are clean, and the client imports with httpx alone."""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("broker", "core", "workers", "api", "client", "config", "telemetry", "ops")
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = BIN / name
    if found.exists():
        return str(found)
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; install the test extras: pip install -e '.[test]'")
    return path


def test_ruff_is_clean() -> None:
    result = subprocess.run(
        [_tool("ruff"), "check", "--no-cache", str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = subprocess.run(
        [_tool("ruff"), "format", "--check", "--no-cache", str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean(tmp_path: Path) -> None:
    """mypy sees the folders under their import names through a tree of symlinks."""
    tree = tmp_path / "anygate"
    tree.mkdir()
    for name in PACKAGES:
        (tree / name).symlink_to(ROOT / name)
    env = {**os.environ, "MYPYPATH": str(tmp_path)}
    result = subprocess.run(
        [
            _tool("mypy"),
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            "-p",
            "anygate",
        ],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr


BLOCKER = """
import importlib.abc, sys
SERVER_SIDE = ("redis", "starlette", "pydantic", "arq", "structlog", "uvicorn", "orjson",
               "yaml", "prometheus_client", "anygate.broker", "anygate.api", "anygate.workers",
               "anygate.config", "anygate.ops", "anygate.core", "anygate.telemetry")
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.startswith(SERVER_SIDE):
            raise ImportError(f"client must not import {name}")
        return None
sys.meta_path.insert(0, Block())
import anygate.client
from anygate.client import AnygateClient, AnygateClientError
print("ok")
"""


def test_client_imports_with_httpx_alone() -> None:
    result = subprocess.run(
        [sys.executable, "-c", BLOCKER], capture_output=True, text=True, check=False
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_client_exports_are_sorted_and_complete() -> None:
    import anygate.client as client  # noqa: PLC0415

    public = {
        n for n in dir(client) if not n.startswith("_") and not inspect.ismodule(getattr(client, n))
    }
    assert set(client.__all__) == public
    assert list(client.__all__) == sorted(client.__all__)


def test_make_mypy_checks_the_same_packages() -> None:
    """``make mypy`` (the pre-commit hook's) must see every package this test's mypy run sees."""
    line = next(
        ln for ln in (ROOT / "Makefile").read_text().splitlines() if ln.startswith("PACKAGES :=")
    )
    assert set(line.split(":=", 1)[1].split()) == set(PACKAGES)
