"""Shared test helpers live in ``tests/support/``: a test module never imports another test
module, so moving or deleting a test cannot break an unrelated one."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _is_test_module(module: str) -> bool:
    return any(part.startswith("test_") for part in module.split("."))


def imports_of_test_modules(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and _is_test_module(node.module):
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names if _is_test_module(alias.name))
    return found


def test_the_check_sees_an_import_of_a_test_module() -> None:
    source = "from tests.integration.test_jobs_api import submit\nimport tests.support.jobs\n"
    assert imports_of_test_modules(source) == ["tests.integration.test_jobs_api"]


def test_no_test_module_imports_another() -> None:
    offenders = {
        str(path.relative_to(TESTS)): found
        for path in sorted(TESTS.rglob("*.py"))
        if (found := imports_of_test_modules(path.read_text(encoding="utf-8")))
    }
    assert not offenders, f"move the shared helpers into tests/support/: {offenders}"
