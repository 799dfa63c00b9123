"""Where the CLI finds the gateway (ops/cli_context.py) and which way ``anygate keys`` goes
(ops/keys_backends.py): the order of flags, environment and env file, and the errors."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from anygate.ops.cli_context import (
    ADMIN_KEY,
    KEY,
    URL,
    Sources,
    admin_connection,
    connection,
    lookup,
)
from anygate.ops.env_file import parse_env_file
from anygate.ops.keys_backends import choose

DEV_ENV = """\
# written by anygate dev
export ANYGATE_URL=http://127.0.0.1:8080
export ANYGATE_KEY='ag-tenant-from-file'
export ANYGATE_ADMIN_KEY="ag-admin-from-file"
ANYGATE_REDIS_URL=redis://127.0.0.1:41234  # no export
echo not an assignment
export EMPTY=
"""


def sources(
    tmp_path: Path,
    *,
    flags: dict[str, str | None] | None = None,
    environ: dict[str, str] | None = None,
    dev_env: str | None = None,
    env_file: Path | None = None,
) -> Sources:
    if dev_env is not None:
        (tmp_path / ".anygate").mkdir(exist_ok=True)
        (tmp_path / ".anygate" / "dev.env").write_text(dev_env, encoding="utf-8")
    return Sources(flags=flags or {}, environ=environ or {}, env_file=env_file, cwd=tmp_path)


def test_the_env_file_is_read_as_a_shell_would_assign() -> None:
    assert parse_env_file(DEV_ENV) == {
        "ANYGATE_URL": "http://127.0.0.1:8080",
        "ANYGATE_KEY": "ag-tenant-from-file",
        "ANYGATE_ADMIN_KEY": "ag-admin-from-file",
        "ANYGATE_REDIS_URL": "redis://127.0.0.1:41234",
        "EMPTY": "",
    }
    assert parse_env_file("export A='unbalanced\n") == {"A": "'unbalanced"}


def test_a_flag_beats_the_environment_which_beats_the_file(tmp_path: Path) -> None:
    everywhere = sources(
        tmp_path,
        flags={"ANYGATE_URL": "http://flag"},
        environ={"ANYGATE_URL": "http://env", "ANYGATE_KEY": "ag-env"},
        dev_env=DEV_ENV,
    )
    assert lookup(URL, everywhere) == "http://flag"
    assert lookup(KEY, everywhere) == "ag-env"
    assert lookup(ADMIN_KEY, everywhere) == "ag-admin-from-file"
    assert lookup(ADMIN_KEY, everywhere, files=False) is None
    assert connection(everywhere, admin=True).key == "ag-admin-from-file"


def test_env_file_flag_replaces_the_dev_env_file(tmp_path: Path) -> None:
    other = tmp_path / "other.env"
    other.write_text("export ANYGATE_URL=http://other/\n", encoding="utf-8")
    found = sources(tmp_path, dev_env=DEV_ENV, env_file=other)
    assert lookup(URL, found) == "http://other/"
    assert lookup(KEY, found) is None, "the dev.env file is not read besides it"
    with pytest.raises(click.ClickException, match=r"--env-file .*missing\.env: no such file"):
        lookup(URL, sources(tmp_path, env_file=tmp_path / "missing.env"))


def test_a_missing_value_says_where_it_was_looked_for_and_never_shows_a_key(
    tmp_path: Path,
) -> None:
    with pytest.raises(click.ClickException) as caught:
        connection(sources(tmp_path, environ={"ANYGATE_URL": "http://x"}), admin=True)
    message = caught.value.message
    assert "no admin key found" in message
    for place in ("--admin-key", "$ANYGATE_ADMIN_KEY", str(tmp_path / ".anygate" / "dev.env")):
        assert place in message
    assert "no such file" in message
    with pytest.raises(click.ClickException) as caught:
        connection(sources(tmp_path, dev_env="export ANYGATE_URL=http://x\n"))
    assert "no tenant key found" in caught.value.message
    assert "not set there" in caught.value.message


def test_a_connection_keeps_its_key_out_of_repr(tmp_path: Path) -> None:
    found = connection(sources(tmp_path, environ={"ANYGATE_URL": "http://x/", "ANYGATE_KEY": "k1"}))
    assert found.url == "http://x"
    assert "k1" not in repr(found)


def test_keys_commands_choose_redis_only_when_asked(tmp_path: Path) -> None:
    api_env = {"ANYGATE_URL": "http://x", "ANYGATE_ADMIN_KEY": "ag-admin"}
    config_env = {"ANYGATE_CONFIG": "/etc/anygate.yaml"}
    none = sources(tmp_path)
    assert choose("redis://r", none, {}) == "redis"
    assert choose(None, sources(tmp_path, environ=api_env), api_env) == "api"
    both = {**api_env, **config_env}
    assert choose(None, sources(tmp_path, environ=both), both) == "api"
    assert choose(None, none, config_env) == "redis"
    assert choose(None, none, {"ANYGATE__REDIS__URL": "redis://r"}) == "redis"
    from_file = sources(tmp_path, dev_env=DEV_ENV)
    assert admin_connection(from_file, files=False) is None
    assert choose(None, from_file, {}) == "api"
    assert choose(None, from_file, config_env) == "redis", "an explicit config beats the file"
    with pytest.raises(click.ClickException, match="ANYGATE_URL and ANYGATE_ADMIN_KEY"):
        choose(None, sources(tmp_path / "empty"), {})
