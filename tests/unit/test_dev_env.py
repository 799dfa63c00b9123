"""``dev.env``: exactly the lines the CLI reads, written whole and private, and the keys read
back from it at the next start (``anygate.ops.dev_env``)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from anygate.ops.dev_env import (
    DevEnv,
    DevKeys,
    load_or_create_keys,
    read_env_file,
    render_env_file,
    write_env_file,
)
from anygate.ops.env_file import parse_env_file

KEYS = DevKeys("ag-tenant_key-1", "ag-admin_key-2")


def _env(config: str = "/srv/dev/config.yaml") -> DevEnv:
    return DevEnv("http://127.0.0.1:8080", KEYS, "redis://127.0.0.1:6390/0", Path(config))


def test_the_file_is_exactly_the_five_exports_the_cli_reads() -> None:
    assert render_env_file(_env()).splitlines() == [
        "export ANYGATE_URL=http://127.0.0.1:8080",
        "export ANYGATE_KEY=ag-tenant_key-1",
        "export ANYGATE_ADMIN_KEY=ag-admin_key-2",
        "export ANYGATE_REDIS_URL=redis://127.0.0.1:6390/0",
        "export ANYGATE_CONFIG=/srv/dev/config.yaml",
    ]


def test_a_path_with_a_space_is_quoted_for_the_shell_and_parsed_back() -> None:
    text = render_env_file(_env("/home/me/my project/.anygate/config.yaml"))
    assert "export ANYGATE_CONFIG='/home/me/my project/.anygate/config.yaml'\n" in text
    parsed = parse_env_file(text)
    assert parsed["ANYGATE_CONFIG"] == "/home/me/my project/.anygate/config.yaml"
    sourced = subprocess.run(
        ["sh", "-c", '. /dev/stdin && printf %s "$ANYGATE_CONFIG"'],
        input=text,
        capture_output=True,
        text=True,
        check=True,
    )
    assert sourced.stdout == "/home/me/my project/.anygate/config.yaml", "the shell agrees"


def test_parse_skips_what_is_not_an_assignment() -> None:
    text = '# a comment\nexport ANYGATE_URL=http://x\n\nnot a line\nPLAIN="v w"\n= x\n'
    assert parse_env_file(text) == {"ANYGATE_URL": "http://x", "PLAIN": "v w"}


def test_the_write_replaces_the_file_whole_and_private(tmp_path: Path) -> None:
    env_file = tmp_path / "dev.env"
    env_file.write_text("export ANYGATE_URL=http://old\n")
    env_file.chmod(0o644)
    write_env_file(env_file, _env())
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert read_env_file(env_file)["ANYGATE_REDIS_URL"] == "redis://127.0.0.1:6390/0"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev.env"], "no temp file left"


def test_a_new_file_is_private_from_its_first_byte(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_env_file(tmp_path / "dev.env", _env())
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "dev.env").stat().st_mode) == 0o600


def test_keys_come_back_from_the_file_they_were_written_to(tmp_path: Path) -> None:
    env_file = tmp_path / "dev.env"
    write_env_file(env_file, _env())
    assert load_or_create_keys(env_file) == KEYS


def test_keys_are_read_from_a_file_of_the_older_three_line_form(tmp_path: Path) -> None:
    env_file = tmp_path / "dev.env"
    env_file.write_text(
        "export ANYGATE_URL=http://127.0.0.1:8080\n"
        "export ANYGATE_KEY=ag-old-tenant\n"
        "export ANYGATE_ADMIN_KEY=ag-old-admin\n"
    )
    assert load_or_create_keys(env_file) == DevKeys("ag-old-tenant", "ag-old-admin")


def test_keys_are_minted_when_there_is_no_file(tmp_path: Path) -> None:
    keys = load_or_create_keys(tmp_path / "dev.env")
    again = load_or_create_keys(tmp_path / "dev.env")
    assert keys.tenant_key.startswith("ag-")
    assert keys.admin_key.startswith("ag-")
    assert keys.tenant_key != keys.admin_key
    assert again != keys, "nothing written: a fresh pair each time"
