"""The README block parser (tests/support/readme_blocks.py): names, languages, and the errors
that keep a block from slipping past the README test."""

from __future__ import annotations

from pathlib import Path

import pytest

from anygate.ops.dev_env import read_env_file
from tests.support.readme_blocks import (
    Block,
    ReadmeError,
    coverage_problems,
    parse_blocks,
    shell_commands,
)
from tests.support.readme_runs import block_environment, contains_all

ROOT = Path(__file__).resolve().parents[2]

DOC = """# title

<!-- example: first -->
```bash
echo one
```

text naming `<!-- example: name -->` in passing

<!-- example: second -->

````Python title="x"
print("```")
````

```
plain, unnamed
```
"""


def test_blocks_come_with_their_name_language_text_and_line() -> None:
    assert parse_blocks(DOC) == [
        Block("first", "bash", "echo one\n", 4),
        Block("second", "python", 'print("```")\n', 12),
        Block(None, "", "plain, unnamed\n", 16),
    ]


def test_an_empty_block_has_empty_text() -> None:
    assert parse_blocks("<!-- example: e -->\n```yaml\n```\n") == [Block("e", "yaml", "", 2)]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("```bash\necho\n", "line 1: the fence is never closed"),
        ("<!-- example: a -->\ntext\n```bash\n```\n", "marker 'a' names no block"),
        ("<!-- example: a -->\n", "marker 'a' names no block"),
        ("<!-- example: a -->\n<!-- example: b -->\n```\n```\n", "marker 'a' names no block"),
        ("<!-- example a -->\n```\n```\n", "line 1: malformed marker"),
        (
            "<!-- example: a -->\n```\n```\n<!-- example: a -->\n```\n```\n",
            "line 5: 'a' already names line 2",
        ),
    ],
)
def test_broken_structure_is_named_with_its_line(doc: str, message: str) -> None:
    with pytest.raises(ReadmeError, match=message):
        parse_blocks(doc)


def test_coverage_names_unmarked_unknown_and_stale_blocks() -> None:
    blocks = parse_blocks(DOC)
    assert coverage_problems(blocks, {"first", "gone"}) == [
        "line 16: a plain block without <!-- example: name -->",
        "line 12: block 'second' is neither run nor classified by the README test",
        "'gone' is in the README test but names no block",
    ]
    assert coverage_problems(blocks[:2], {"first", "second"}) == []


def test_shell_commands_join_continuations_and_drop_comments() -> None:
    text = (
        "# a comment line\n"
        "anygate api        # stateless\n"
        "\n"
        "anygate worker --pool openai \\\n"
        "  --concurrency 64\n"
        "echo '# not a comment'\n"
    )
    assert shell_commands(text) == [
        ["anygate", "api"],
        ["anygate", "worker", "--pool", "openai", "--concurrency", "64"],
        ["echo", "# not a comment"],
    ]
    with pytest.raises(ReadmeError, match="continuation"):
        shell_commands("echo \\\n")


def test_the_readme_parses_and_every_block_is_named() -> None:
    """The cheap half of the README test, in the unit loop: a new block without a marker is
    caught before anything starts."""
    blocks = parse_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert blocks
    assert [b.line for b in blocks if b.name is None] == []


def test_a_block_that_sources_dev_env_starts_without_the_stack_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader's two shells (tests/support/readme_runs.py): one block must make
    ``source .anygate/dev.env`` work by itself; the others run where it was sourced."""
    env_file = tmp_path / "dev.env"
    env_file.write_text(
        "export ANYGATE_URL=http://127.0.0.1:1\nexport ANYGATE_KEY=ag-k\n\n", encoding="utf-8"
    )
    dev_env = read_env_file(env_file)
    assert dev_env == {"ANYGATE_URL": "http://127.0.0.1:1", "ANYGATE_KEY": "ag-k"}
    monkeypatch.setenv("ANYGATE_URL", "http://elsewhere")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real")
    sourcing = Block("a", "bash", "source .anygate/dev.env\ncurl $ANYGATE_URL\n", 1)
    assert "ANYGATE_URL" not in block_environment(sourcing, dev_env)
    assert "OPENAI_API_KEY" not in block_environment(sourcing, dev_env)
    env = block_environment(Block("b", "python", "import os\n", 5), dev_env)
    assert (env["ANYGATE_URL"], env["ANYGATE_KEY"]) == ("http://127.0.0.1:1", "ag-k")
    assert "OPENAI_API_KEY" not in env
    assert contains_all("a b c", ["a", "d", "c"]) == ["d"]
