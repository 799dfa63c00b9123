"""``anygate keys …`` and ``anygate tenants …`` as an operator runs them: straight to Redis with the
config file (``$ANYGATE_CONFIG``), while an API process serves the keys they make. Through the
admin API, with no Redis named anywhere: test_keys_cli_admin_api.py."""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.admin import JOB, admin_tree, as_admin, keyed
from tests.support.cli import run_cli
from tests.support.mock import MockControl
from tests.support.stack import Stack, running_stack


@pytest.fixture
def cli_stack(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> Iterator[Stack]:
    with running_stack(tmp_path, admin_tree(redis_server.url, namespace, mock.url)) as stack:
        yield stack


def anygate(stack: Stack | None, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the CLI with the stack's config (none: no ``ANYGATE*`` variable at all), in a folder
    with no ``.anygate/dev.env``."""
    cwd = stack.config_path.parent if stack else Path(tempfile.gettempdir())
    return run_cli(*args, env=stack.env if stack else None, cwd=cwd, ok=ok)


def key_id(stderr: str) -> str:
    found = re.search(r"\b(key_[0-9a-f]+)\b", stderr)
    assert found, stderr
    return found.group(1)


async def test_a_cli_key_works_over_http_until_revoked(cli_stack: Stack) -> None:
    created = anygate(
        cli_stack, "keys", "create", "--tenant", "acme", "--name", "deploy", "--rpm", "50"
    )
    secret = created.stdout.strip()
    assert re.fullmatch(r"ag-[A-Za-z0-9_-]{43}", secret), "stdout is the key and nothing else"
    assert secret not in created.stderr
    kid = key_id(created.stderr)
    async with keyed(cli_stack, secret) as client:
        assert (await client.post("/v1/jobs", json=JOB)).status_code == 202
        listed = anygate(cli_stack, "keys", "list", "--tenant", "acme")
        assert kid in listed.stdout
        assert "deploy" in listed.stdout
        assert secret not in listed.stdout + listed.stderr
        anygate(cli_stack, "keys", "revoke", kid)
        assert (await client.get("/v1/jobs")).status_code == 401
    assert "revoked" in anygate(cli_stack, "keys", "list", "--tenant", "acme").stdout


async def test_tenants_and_an_operator_key_from_the_cli(cli_stack: Stack) -> None:
    anygate(cli_stack, "tenants", "create", "newco", "--weight", "3")
    assert re.search(
        r"^newco\s+weight=3\s+active", anygate(cli_stack, "tenants", "list").stdout, re.M
    )
    again = anygate(cli_stack, "tenants", "create", "newco", ok=False)
    assert again.returncode == 1
    assert "taken" in again.stderr
    operator = anygate(cli_stack, "keys", "create", "--admin").stdout.strip()
    tenant_key = anygate(cli_stack, "keys", "create", "--tenant", "newco", "--scope", "jobs")
    async with keyed(cli_stack, operator) as admin_client:
        tenant = (await admin_client.get("/admin/tenants/newco")).json()
        assert tenant["weight"] == 3
        keys = (await admin_client.get("/admin/keys", params={"tenant": "newco"})).json()["data"]
        assert [(k["id"], k["scopes"], k["source"]) for k in keys] == [
            (key_id(tenant_key.stderr), ["jobs"], "cli")
        ]
    assert key_id(anygate(cli_stack, "keys", "list").stdout)  # operator keys by default
    async with as_admin(cli_stack) as admin_client:
        assert (await admin_client.get("/admin/keys")).json()["data"][0]["scopes"] == ["admin"]


@pytest.mark.parametrize(
    "args",
    [
        ("keys", "create"),
        ("keys", "create", "--admin", "--tenant", "acme"),
        ("keys", "create", "--admin", "--scope", "jobs"),
        ("keys", "create", "--tenant", "acme", "--scope", "admin"),
        ("keys", "create", "--tenant", "acme", "--rpm", "0"),
        ("tenants", "create", "bad id"),
    ],
)
def test_bad_invocations_are_refused(args: tuple[str, ...]) -> None:
    """Refused as usage errors before anything is read or written."""
    done = anygate(None, *args, ok=False)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""


def test_an_unknown_tenant_or_key_is_a_clear_error(cli_stack: Stack) -> None:
    for args, words in (
        (("keys", "create", "--tenant", "nobody"), "No tenant found"),
        (("keys", "revoke", "key_nothing"), "No API key found"),
    ):
        done = anygate(cli_stack, *args, ok=False)
        assert done.returncode == 1
        assert words in done.stderr
        assert "Traceback" not in done.stderr
