"""The repository stands alone: nothing in it cites the product specification by section or
points into a sibling ``shared`` folder, neither of which a user has. Code and docs cite
``docs/…`` pages instead."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Spelled in pieces so that this file is not itself a hit.
FORBIDDEN = ("SPEC " + "\u00a7", ".." + "/shared")
SKIPPED_DIRS = {
    ".venv",
    ".git",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".mypy-tree",
    ".anygate",
    "build",
    "dist",
}


def _files(root: Path) -> list[Path]:
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info")]
        found.extend(Path(folder) / name for name in names)
    return found


def offending_lines(root: Path) -> list[str]:
    hits = []
    for path in _files(root):
        try:
            text = path.read_bytes().decode("utf-8", errors="replace")
        except OSError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if any(needle in line for needle in FORBIDDEN):
                hits.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return hits


def test_the_scan_finds_a_citation(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text('"""See docs/api.md."""\n', encoding="utf-8")
    (tmp_path / "bad.md").write_text(f"as {FORBIDDEN[0]}2 says\n", encoding="utf-8")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "ignored.py").write_text(FORBIDDEN[1], encoding="utf-8")
    assert offending_lines(tmp_path) == [f"bad.md:1: as {FORBIDDEN[0]}2 says"]


def test_no_file_cites_the_spec_or_the_shared_folder() -> None:
    hits = offending_lines(ROOT)
    assert not hits, "cite docs/ instead:\n" + "\n".join(hits)
