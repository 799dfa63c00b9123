"""Layers point one way (docs/architecture.md, "Layers"): each package folder imports only
itself and the layers below it; ``api`` and ``workers`` share a layer and never import each
other; the client imports nothing of the server, and only ``ops`` (the CLI) imports it.

Read from the source with ``ast``, not by importing: every import counts, including those
inside functions and under ``TYPE_CHECKING``, since any of them ties the layers together.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

LAYER = {"config": 0, "telemetry": 1, "broker": 2, "core": 3, "api": 4, "workers": 4, "ops": 5}
"""Higher may import lower; equal ranks (``api``, ``workers``) may not import each other."""

ALONE = "client"
"""Imports no other ``anygate`` package: it must install and run with httpx alone."""
CLIENT_USER = "ops"
"""The one package that may import the client: the CLI's job and batch commands are a client
of the gateway like any application (docs/cli.md)."""

PACKAGES = (*LAYER, ALONE)


def imported_packages(tree: ast.AST) -> list[tuple[int, str]]:
    """``(line, module)`` for every absolute import of an ``anygate.*`` module."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, n) for n in names if n.startswith("anygate.")]
    return found


def may_import(importer: str, imported: str) -> bool:
    if importer == imported:
        return True
    if imported == ALONE:
        return importer == CLIENT_USER
    if importer == ALONE or imported not in LAYER:
        return False
    return LAYER[imported] < LAYER[importer]


def violations(package: str) -> list[str]:
    """One line per import that breaks the rule: the file, the line and what it imports."""
    found: list[str] = []
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, module in imported_packages(tree):
            target = module.split(".")[1]
            if not may_import(package, target):
                found.append(
                    f"{path.relative_to(ROOT)}:{line} imports {module}: {package} may not "
                    f"import {target} (docs/architecture.md, Layers)"
                )
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_a_package_imports_only_layers_below_it(package: str) -> None:
    assert (ROOT / package / "__init__.py").is_file(), f"no package folder {package}/"
    problems = violations(package)
    assert not problems, "\n".join(problems)


def test_every_installed_package_has_a_layer() -> None:
    """A new top-level package (a folder mapped in pyproject.toml) must be given a layer, or
    nothing would hold it to the rule."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    folders = {d for d in config["tool"]["setuptools"]["package-dir"].values() if "/" not in d}
    assert folders == set(PACKAGES), f"layers for {sorted(PACKAGES)}, packages {sorted(folders)}"


@pytest.mark.parametrize(
    ("importer", "imported", "allowed"),
    [
        ("api", "core", True),
        ("workers", "broker", True),
        ("ops", "workers", True),
        ("api", "workers", False),
        ("workers", "api", False),
        ("core", "api", False),
        ("broker", "core", False),
        ("config", "broker", False),
        ("broker", "telemetry", True),
        ("telemetry", "config", True),
        ("telemetry", "broker", False),
        ("config", "telemetry", False),
        ("client", "config", False),
        ("ops", "client", True),
        ("api", "client", False),
        ("workers", "client", False),
        ("client", "ops", False),
    ],
)
def test_the_rule(importer: str, imported: str, *, allowed: bool) -> None:
    assert may_import(importer, imported) is allowed
