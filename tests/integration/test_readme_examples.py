"""Every code block of the README, run against a live stack or checked, so no example can rot.

The stack is the one the README starts: its first command's ``.venv/bin/anygate dev`` (plus a
free ``--port`` and a ``--data-dir``), in a fresh folder whose ``.venv`` links to the tests'
own virtualenv (``tests/support/readme_runs.py`` says why). Bash blocks run there with
``bash -euo pipefail``, Python blocks with the venv's python, the JavaScript block with
``node``; each must exit 0 and print what ``EXAMPLES`` says. A block that cannot run as
written is checked another way, named in ``EXAMPLES`` with its reason and its test. A block in
neither fails ``test_every_block_is_run_or_checked``.

Blocks that need the Python client or the CLI of the issue 17 work (``needs``) are skipped
while ``anygate.client`` has no ``Client`` or the CLI no ``submit`` command, detected, not
assumed.
"""

from __future__ import annotations

import importlib
import re
import secrets
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
import yaml
from pydantic import BaseModel

from anygate.api.auth import TENANT_KEY_HEADER
from anygate.config import SecretRef, SecretResolutionError, load_config
from anygate.ops.cli import main as anygate_cli
from anygate.ops.embedded_redis import EmbeddedRedis
from anygate.ops.processes import wait_until
from tests.support.configs import MOCK_KEY_ENV, TENANT_KEYS, config_tree, sync_redis
from tests.support.processes import ManagedProcess, free_port
from tests.support.readme_blocks import Block, coverage_problems, parse_blocks, shell_commands
from tests.support.readme_runs import (
    ReaderFolder,
    clean_environment,
    contains_all,
    node_missing,
    start_reader_folder,
    venv_root,
)
from tests.support.stack import layout_of

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = {b.name: b for b in parse_blocks((ROOT / "README.md").read_text(encoding="utf-8"))}


@dataclass(frozen=True)
class Run:
    """Run as written; its output must contain every piece of ``expect``."""

    expect: tuple[str, ...]
    needs: Literal["client", "cli"] | None = None


@dataclass(frozen=True)
class Check:
    """Cannot run as written (``reason``); ``test`` checks it instead."""

    reason: str
    test: str


EXAMPLES: dict[str, Run | Check] = {
    "install-and-dev": Check(
        "its pip install is this venv's own; its `anygate dev` starts the stack of every Run",
        "test_install_and_dev_command",
    ),
    "install-and-test": Check("CI runs it (.ci/run), checked equal", "test_install_and_test"),
    "try-it": Run(
        (
            '"status":"succeeded"',
            "Mock reply to: Hello",
            "event: queued",
            "event: chunk",
            "event: completed",
            '"endpoint":"/v1/embeddings"',
            '"object":"list"',
        )
    ),
    "openai-sdk": Run(("Mock reply to: Hello\nMock reply to: Hello",)),
    "gemini-sdk": Run(("Mock reply to: Hello", "values=[")),
    "openai-batch": Run(("completed=10, failed=0, total=10", '"custom_id":"q0"')),
    "client-sync": Run(("succeeded Mock reply to: Hello", "Mock reply to: Hello again"), "client"),
    "client-async": Run(
        ("Mock reply to: Tell a story", "completed: 6/6 done", "q0 ok Mock reply to: Hi 0"),
        "client",
    ),
    "cli": Run(
        (
            "anygate, version",
            "Mock reply to: Hello",
            "Mock reply to: Tell a story",
            "Mock reply to: Hello again",
            "2 completed, 0 failed",
            "openai",
            "created tenant globex",
            "ag-",
        ),
        "cli",
    ),
    "javascript-sse": Run(("Mock reply to: Hello from Node\ncompleted: job_",)),
    "production": Check(
        "long-running processes: started against the test Redis with a generated config, "
        "checked ready and serving, stopped by pid",
        "test_production_commands_start_a_serving_stack",
    ),
    "config": Check(
        "a config file: loaded by the real loader, its env: references set",
        "test_config_block_is_a_valid_configuration",
    ),
    "admin-api": Run(
        (
            '"id":"acme","weight":2',
            '"max_queued":1000',
            '"object":"api_key"',
            '"paused":true',
            '"paused":false',
            '"object":"dead_letters.requeue"',
        )
    ),
    "byok": Check(
        "a fragment (url and keys are the reader's): run with them defined, headers checked",
        "test_byok_fragment_builds_a_client",
    ),
    "bench": Check(
        "minutes of load on the whole machine: each command run with --help, options checked",
        "test_bench_commands_exist",
    ),
}

RUNS = [name for name in BLOCKS if isinstance(EXAMPLES.get(name or ""), Run)]


def _block(name: str) -> Block:
    block = BLOCKS.get(name)
    assert block is not None, f"the README has no block named {name!r}"
    return block


def _missing(needs: str | None) -> str | None:
    """Why a block cannot run yet: the part it shows is not in this tree."""
    if needs == "client":
        client = importlib.import_module("anygate.client")
        return None if hasattr(client, "Client") else "anygate.client has no Client yet"
    if needs == "cli":
        return None if "submit" in anygate_cli.commands else "the CLI has no `submit` command yet"
    return None


def _readme_dev_command() -> list[str]:
    """The last step of the README's first command: what a reader runs to start the stack."""
    steps = _block("install-and-dev").text.strip().split(" && ")
    return shlex.split(steps[-1])


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReaderFolder]:
    folder = start_reader_folder(tmp_path_factory.mktemp("reader"), _readme_dev_command())
    with folder.dev:
        yield folder


def test_every_block_is_run_or_checked() -> None:
    blocks = parse_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert coverage_problems(blocks, EXAMPLES) == []
    for name, example in EXAMPLES.items():
        if isinstance(example, Check):
            assert callable(globals().get(example.test)), f"{name}: no test {example.test}"
        assert _block(name).lang in {"bash", "python", "javascript", "yaml"}


@pytest.mark.parametrize("name", RUNS)
def test_block_runs_and_prints_what_it_should(reader: ReaderFolder, name: str) -> None:
    example = EXAMPLES[name]
    assert isinstance(example, Run)
    missing = _missing(example.needs)
    if missing:
        pytest.skip(f"needs: {example.needs} ({missing})")
    if _block(name).lang == "javascript" and (no_node := node_missing()):
        pytest.skip(no_node)
    outcome = reader.run(_block(name))
    shown = f"{' '.join(outcome.command)} (README line {_block(name).line}):\n{outcome.output}"
    assert outcome.returncode == 0, f"exited {outcome.returncode}: {shown}"
    lacking = contains_all(outcome.output, example.expect)
    assert not lacking, f"missing {lacking} in the output of {shown}"


def test_install_and_dev_command(reader: ReaderFolder) -> None:
    """The first command is the second's install without the test extra, then ``anygate
    dev``; this venv has the checkout installed editable (what ``pip install -e .`` leaves),
    and the stack every Run uses was started by that last step, answering on its dev.env."""
    steps = _block("install-and-dev").text.strip().split(" && ")
    test_steps = _block("install-and-test").text.strip().split(" && ")
    assert steps[0] == test_steps[0] == "python3 -m venv .venv"
    assert steps[1] == ".venv/bin/pip install -e ."
    assert test_steps[1] == ".venv/bin/pip install -e '.[test]'"
    assert _readme_dev_command() == [".venv/bin/anygate", "dev"]
    assert (venv_root() / "bin" / "anygate").exists()
    api_module = importlib.import_module("anygate.api")
    assert Path(str(api_module.__file__)).resolve().is_relative_to(ROOT), "editable install"
    env = reader.dev_env
    assert env["ANYGATE_URL"] == reader.url
    jobs = httpx.get(
        f"{reader.url}/v1/jobs", headers={"authorization": f"Bearer {env['ANYGATE_KEY']}"}
    )
    assert jobs.status_code == 200


def test_install_and_test() -> None:
    """CI runs exactly the README's second command (.ci/run)."""
    command = _block("install-and-test").text.strip()
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert command in ci_lines


def test_production_commands_start_a_serving_stack(
    tmp_path: Path, redis_server: EmbeddedRedis, mock_server: str
) -> None:
    """The README's three commands, as written (``anygate`` from the venv on PATH), against
    the test Redis and mock with a generated config; ready, then a job goes through."""
    commands = shell_commands(_block("production").text)
    assert [c[:2] for c in commands] == [
        ["anygate", "api"],
        ["anygate", "worker"],
        ["anygate", "control"],
    ]
    port = free_port()
    tree = config_tree(redis_server.url, f"t{secrets.token_hex(5)}", mock_root=mock_server)
    tree["server"] = {"host": "127.0.0.1", "port": port}
    config_path = tmp_path / "anygate.yaml"
    config_path.write_text(yaml.safe_dump(tree), encoding="utf-8")
    env = {
        **clean_environment(),
        "PATH": f"{venv_root() / 'bin'}:{clean_environment().get('PATH', '')}",
        "ANYGATE_CONFIG": str(config_path),
        MOCK_KEY_ENV: "mock-key",
    }
    keys = layout_of(tree)
    redis = sync_redis(redis_server.url)
    url = f"http://127.0.0.1:{port}"
    started: list[ManagedProcess] = []
    try:
        api, worker, control = commands
        started.append(ManagedProcess.start(api, env=env, ready_url=f"{url}/readyz"))
        started.append(ManagedProcess.start(worker, env=env))
        wait_until(
            lambda: None if redis.hlen(keys.workers("openai")) else "not registered",
            what="the worker",
            watch=[started[-1].child],
        )
        started.append(ManagedProcess.start(control, env=env))
        ticked = f"{keys.prefix}control:ticked"
        wait_until(
            lambda: None if redis.exists(ticked) else "no tick yet",
            what="the control plane",
            watch=[started[-1].child],
        )
        headers = {"authorization": f"Bearer {TENANT_KEYS['acme']}"}
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "prod"}]}
        job = httpx.post(
            f"{url}/v1/jobs",
            headers=headers,
            json={"endpoint": "/v1/chat/completions", "body": body},
        ).json()
        done = httpx.get(
            f"{url}/v1/jobs/{job['id']}", headers=headers, params={"wait": 20}, timeout=30
        ).json()
        assert done["status"] == "succeeded", done
    finally:
        for process in reversed(started):
            process.terminate(timeout=40)
        redis.close()


def _secret_refs(value: Any) -> Iterator[SecretRef]:
    if isinstance(value, SecretRef):
        yield value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secret_refs(getattr(value, name))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _secret_refs(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _secret_refs(item)


def test_config_block_is_a_valid_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loaded by the real loader; every ``env:`` reference it makes resolves once its variable
    is set (and only then: they are references, not literals)."""
    text = _block("config").text
    path = tmp_path / "readme.yaml"
    path.write_text(text, encoding="utf-8")
    names = sorted(set(re.findall(r"env:([A-Za-z_][A-Za-z0-9_]*)", text)))
    assert names == ["ACME_KEY", "GEMINI_API_KEY", "OPENAI_API_KEY"]
    for name in names:
        monkeypatch.delenv(name, raising=False)
    config = load_config(path, environ={})
    refs = list(_secret_refs(config))
    assert {ref.target for ref in refs} >= {"GEMINI_API_KEY", "OPENAI_API_KEY"}
    with pytest.raises(SecretResolutionError, match="OPENAI_API_KEY"):
        next(r for r in refs if r.target == "OPENAI_API_KEY").resolve()
    for name in names:
        monkeypatch.setenv(name, f"dummy-{name.lower()}")
    for ref in refs:
        assert ref.resolve().get_secret_value() == f"dummy-{ref.target.lower()}"
    assert config.models["gpt-4o-mini"].fallbacks == ("gemini-2.5-flash",)


def test_byok_fragment_builds_a_client() -> None:
    """The fragment names the reader's own values; defined, it builds an OpenAI client that
    sends the gateway key where the API looks for it."""
    fragment = _block("byok").text
    namespace: dict[str, Any] = {"url": "http://gateway", "MY_OPENAI_KEY": "sk-own", "KEY": "ag-x"}
    exec("from openai import OpenAI\nclient = " + fragment, namespace)
    client = namespace["client"]
    assert str(client.base_url).rstrip("/") == "http://gateway/v1"
    assert client.api_key == "sk-own"
    assert client.default_headers[TENANT_KEY_HEADER] == "ag-x"


def test_bench_commands_exist() -> None:
    """Each command runs (``--help``) from the checkout, and knows every option it is given."""
    commands = shell_commands(_block("bench").text)
    assert [c[1] for c in commands] == [
        "bench/run.py",
        "bench/run.py",
        "bench/run.py",
        "bench/durability.py",
        "bench/observability.py",
    ]
    for command in commands:
        assert command[0] == ".venv/bin/python"
        done = subprocess.run(
            [sys.executable, *command[1:], "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        for option in (word for word in command[2:] if word.startswith("--")):
            assert option in done.stdout, f"{' '.join(command)}: {option} unknown"
