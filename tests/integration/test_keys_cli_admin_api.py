"""``anygate keys …`` and ``anygate tenants …`` through a running gateway's admin API: a URL and an
admin key from the environment, ``.anygate/dev.env`` or ``--env-file``, and no Redis URL or
config file anywhere (docs/cli.md#keys-and-tenants)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.admin import ADMIN_KEY, JOB, admin_tree, as_admin, keyed
from tests.support.cli import run_cli
from tests.support.mock import MockControl
from tests.support.stack import Stack, running_stack


@pytest.fixture
def api_stack(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> Iterator[Stack]:
    folder = tmp_path / "stack"
    folder.mkdir()
    with running_stack(folder, admin_tree(redis_server.url, namespace, mock.url)) as stack:
        yield stack


def key_id(text: str) -> str:
    found = re.search(r"\b(key_[0-9a-f]+)\b", text)
    assert found, text
    return found.group(1)


def admin_env(stack: Stack) -> dict[str, str]:
    return {"ANYGATE_URL": stack.url, "ANYGATE_ADMIN_KEY": ADMIN_KEY}


def in_folder(
    folder: Path, *args: str, env: dict[str, str] | None = None, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    folder.mkdir(parents=True, exist_ok=True)
    return run_cli(*args, env=env, cwd=folder, ok=ok)


async def test_tenants_and_keys_through_the_admin_api(api_stack: Stack, tmp_path: Path) -> None:
    env = admin_env(api_stack)
    here = tmp_path / "work"
    none_yet = in_folder(here, "keys", "list", env=env)
    assert none_yet.stdout == ""
    assert "no keys for the operator" in none_yet.stderr
    in_folder(here, "tenants", "create", "newco", "--weight", "3", env=env)
    listed = in_folder(here, "tenants", "list", env=env).stdout
    assert re.search(r"^newco\s+weight=3\s+active\s+auth_mode=gateway$", listed, re.M), listed
    again = in_folder(here, "tenants", "create", "newco", env=env, ok=False)
    assert again.returncode == 1
    assert "taken" in again.stderr
    created = in_folder(
        here, "keys", "create", "--tenant", "newco", "--name", "ci", "--rpm", "50", env=env
    )
    secret = created.stdout.strip()
    assert re.fullmatch(r"ag-[A-Za-z0-9_-]{43}", secret), "stdout is the key and nothing else"
    assert secret not in created.stderr
    kid = key_id(created.stderr)
    async with as_admin(api_stack) as admin_client:
        record = (await admin_client.get(f"/admin/keys/{kid}")).json()
    assert (record["source"], record["rpm"], record["name"]) == ("admin", 50, "ci")
    async with keyed(api_stack, secret) as client:
        assert (await client.post("/v1/jobs", json=JOB)).status_code == 202
        listed = in_folder(here, "keys", "list", "--tenant", "newco", env=env)
        assert kid in listed.stdout
        assert secret not in listed.stdout + listed.stderr
        revoked = in_folder(here, "keys", "revoke", kid, env=env)
        assert f"revoked {kid}" in revoked.stderr
        assert (await client.get("/v1/jobs")).status_code == 401
    assert "revoked" in in_folder(here, "keys", "list", "--tenant", "newco", env=env).stdout
    operator = in_folder(here, "keys", "create", "--admin", env=env).stdout.strip()
    async with keyed(api_stack, operator) as admin_client:
        assert (await admin_client.get("/admin/tenants/newco")).json()["weight"] == 3
    assert key_id(in_folder(here, "keys", "list", env=env).stdout)  # operator keys


def test_api_errors_are_one_clear_line(api_stack: Stack, tmp_path: Path) -> None:
    env = admin_env(api_stack)
    for args, words in (
        (("keys", "create", "--tenant", "nobody"), "No tenant found"),
        (("keys", "revoke", "key_nothing"), "No API key found"),
        (("keys", "list", "--tenant", "nobody"), "No tenant found"),
    ):
        done = in_folder(tmp_path, *args, env=env, ok=False)
        assert done.returncode == 1, done.stderr
        assert words in done.stderr
        assert "Traceback" not in done.stderr
    wrong = "ag-not-the-admin-key-0000000000"
    refused = in_folder(
        tmp_path, "tenants", "list", env={**env, "ANYGATE_ADMIN_KEY": wrong}, ok=False
    )
    assert refused.returncode == 1
    assert "refused the admin key (401)" in refused.stderr
    assert wrong not in refused.stderr


def test_the_dev_env_file_and_env_file_flag_are_read(api_stack: Stack, tmp_path: Path) -> None:
    """What ``anygate dev`` writes, found in the working folder; or a file named with
    ``--env-file``; flags beat both."""
    dev = tmp_path / "project"
    (dev / ".anygate").mkdir(parents=True)
    (dev / ".anygate" / "dev.env").write_text(
        f"export ANYGATE_URL={api_stack.url}\n"
        f"export ANYGATE_KEY='sk-unused'\n"
        f"export ANYGATE_ADMIN_KEY='{ADMIN_KEY}'\n"
        "export ANYGATE_REDIS_URL=redis://127.0.0.1:9\n",
        encoding="utf-8",
    )
    in_folder(dev, "tenants", "create", "fromdev")
    assert "fromdev" in in_folder(dev, "tenants", "list").stdout
    elsewhere = tmp_path / "elsewhere"
    env_file = str(dev / ".anygate" / "dev.env")
    assert "fromdev" in in_folder(elsewhere, "tenants", "list", "--env-file", env_file).stdout
    bad_url = in_folder(
        dev, "tenants", "list", "--url", "http://127.0.0.1:9", ok=False
    )  # the flag wins over the file
    assert "cannot reach the gateway at http://127.0.0.1:9" in bad_url.stderr


def test_with_nothing_to_reach_it_says_what_to_set(tmp_path: Path) -> None:
    for args in (("keys", "list"), ("tenants", "create", "x")):
        done = in_folder(tmp_path, *args, ok=False)
        assert done.returncode == 1
        for named in ("ANYGATE_URL", "ANYGATE_ADMIN_KEY", "--redis-url", "ANYGATE_CONFIG"):
            assert named in done.stderr
        assert str(tmp_path / ".anygate" / "dev.env") in done.stderr
        assert "Traceback" not in done.stderr


async def test_redis_directly_only_when_asked(api_stack: Stack, tmp_path: Path) -> None:
    """``--redis-url`` writes to Redis (the stack's namespace from the environment); with both a
    config file and the admin API at hand, the admin API is used."""
    redis = api_stack.tree["redis"]
    ns_env = {
        "ANYGATE__REDIS__NAMESPACE": redis["namespace"],
        "ANYGATE__REDIS__MODE": redis["mode"],
    }
    direct = in_folder(
        tmp_path, "keys", "create", "--admin", "--redis-url", redis["url"], env=ns_env
    )
    both = in_folder(
        tmp_path,
        "keys",
        "create",
        "--admin",
        env={**admin_env(api_stack), "ANYGATE_CONFIG": str(api_stack.config_path)},
    )
    async with as_admin(api_stack) as admin_client:
        for created, source in ((direct, "cli"), (both, "admin")):
            record = (await admin_client.get(f"/admin/keys/{key_id(created.stderr)}")).json()
            assert record["source"] == source
