"""``docker-compose.yml`` and the configuration it mounts (docs/deploy.md): valid against the
official compose-spec schema, every process restarted, every command one the ``anygate`` CLI
has, and the header's instructions true: the keys it says to set reach the processes that use
them."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from anygate.config import AnygateConfig, load_config
from anygate.ops.cli import main as cli
from anygate.workers.worker import WorkerSettings
from tests.deploy.validation import SchemaError, validate_compose

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?-)(?P<default>[^}]*))?\}")
ROLES = {"api", "worker", "control"}

# What the header tells a user to set for real providers.
REAL_PROVIDERS = {
    "OPENAI_API_KEY": "sk-from-the-shell",
    "ANYGATE__PROVIDERS__OPENAI__BASE_URL": "https://api.openai.com/v1",
    "GEMINI_API_KEY": "gemini-from-the-shell",
    "ANYGATE__PROVIDERS__GEMINI__BASE_URL": "https://generativelanguage.googleapis.com",
}


def _interpolate(node: Any, shell: dict[str, str]) -> Any:
    """Compose's ``${NAME}``, ``${NAME:-default}`` and ``${NAME-default}`` with ``shell`` as
    the environment ``docker compose`` runs in."""
    if isinstance(node, dict):
        return {key: _interpolate(value, shell) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolate(value, shell) for value in node]
    if not isinstance(node, str):
        return node

    def one(found: re.Match[str]) -> str:
        value = shell.get(found["name"])
        if found["op"] == ":-" and not value:
            return str(found["default"])
        if found["op"] == "-" and value is None:
            return str(found["default"])
        return value or ""

    return VARIABLE.sub(one, node)


def _compose(shell: dict[str, str] | None = None) -> dict[str, Any]:
    tree = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))  # merge keys (<<) applied
    return dict(_interpolate(tree, shell or {}))


def _anygate_services(tree: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in tree["services"].items()
        if service.get("build") and service["command"][0] in ROLES
    }


def _params(command: list[str]) -> dict[str, Any]:
    with click.Context(cli) as parent:
        return dict(
            cli.commands[command[0]].make_context(command[0], command[1:], parent=parent).params
        )


def _mounted_config(service: dict[str, Any]) -> AnygateConfig:
    env = {key: str(value) for key, value in service["environment"].items()}
    mounts = {}
    for volume in service["volumes"]:
        source, target, *_ = volume.split(":")
        mounts[target] = ROOT / source
    return load_config(mounts[env["ANYGATE_CONFIG"]], environ=env)


def _resolved_refs(config: AnygateConfig, command: list[str]) -> set[str]:
    """The ``env:NAME`` references the process resolves (docs/operations.md)."""
    role = command[0]
    refs = []
    if role == "api":
        refs += list(config.admin_api_keys) + [r for t in config.tenants for r in t.api_keys]
    elif role == "worker":
        refs.append(config.providers[_params(command)["pool"]].api_key)
    else:
        refs.append(config.security.webhook_secret)
    return {r.target for r in refs if r is not None and r.scheme == "env"}


def test_the_compose_file_matches_the_compose_spec() -> None:
    validate_compose(_compose())
    validate_compose(_compose(REAL_PROVIDERS))


def test_the_schema_check_refuses_a_wrong_compose_file() -> None:
    tree = _compose()
    tree["services"]["api"]["restart_policy"] = "always"  # a deploy: key, not a service's
    with pytest.raises(SchemaError, match="restart_policy"):
        validate_compose(tree)


def test_every_service_comes_back_after_it_exits() -> None:
    for name, service in _compose()["services"].items():
        assert service.get("restart") in {"unless-stopped", "always", "on-failure"}, name


def test_every_command_is_one_the_cli_has() -> None:
    services = _anygate_services(_compose())
    assert {s["command"][0] for s in services.values()} == ROLES
    for name, service in services.items():
        params = _params(service["command"])
        if params.get("metrics_port") is not None:
            # Prometheus scrapes it from another container: loopback would be out of reach
            assert params["metrics_host"] == "0.0.0.0", name


@pytest.mark.parametrize("shell", [{}, REAL_PROVIDERS], ids=["mock", "real-providers"])
def test_the_mounted_config_is_valid_and_each_process_gets_its_secrets(
    shell: dict[str, str],
) -> None:
    tree = _compose(shell)
    pools_served = set()
    for name, service in _anygate_services(tree).items():
        config = _mounted_config(service)
        env = service["environment"]
        for ref in _resolved_refs(config, service["command"]):
            assert env.get(ref), f"{name} resolves env:{ref}, which it is not given"
        if service["command"][0] != "worker":
            assert not {"OPENAI_API_KEY", "GEMINI_API_KEY"} & set(env), (
                f"{name} gets a provider key"
            )
            continue
        pool = _params(service["command"])["pool"]
        pools_served.add(pool)
        provider = config.providers[pool]
        key = env[provider.api_key.target]  # type: ignore[union-attr]
        shell_key = f"{pool.upper()}_API_KEY"
        shell_url = f"ANYGATE__PROVIDERS__{pool.upper()}__BASE_URL"
        if shell:
            # the header's instructions: the shell's key and upstream reach this pool's worker
            assert key == shell[shell_key], name
            assert provider.resolved_base_url() == shell[shell_url].rstrip("/")
        else:
            assert provider.resolved_base_url().startswith("http://mock:"), name
    assert pools_served == set(_mounted_config(tree["services"]["api"]).providers)


def test_the_header_names_only_variables_the_file_reads() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    told = set(re.findall(r"\b([A-Z][A-Z0-9_]+)=", header)) | set(
        re.findall(r"\$([A-Z][A-Z0-9_]+)", header)
    )
    assert told >= {"OPENAI_API_KEY", "GEMINI_API_KEY", "ACME_KEY", "ANYGATE_ADMIN_KEY"}
    read = {m["name"] for m in VARIABLE.finditer(text)}
    assert told <= read, f"the header names {sorted(told - read)}, which nothing reads"
    # the example request: the API's published port, the tenant's default key, a served model
    tree = _compose()
    api = tree["services"]["api"]
    assert "127.0.0.1:8080:8080" in api["ports"]
    assert f"Bearer {api['environment']['ACME_KEY']}" in header
    assert '"model": "gpt-4o-mini"' in header
    assert "gpt-4o-mini" in _mounted_config(api).models
    # `--scale worker=3`: the service exists and nothing pins it to one container
    worker = tree["services"]["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker
    assert "--scale worker=3" in header
    assert tree["services"]["api"]["environment"]["ANYGATE_ADMIN_KEY"]


def test_a_stopping_worker_is_given_time_to_drain() -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(WorkerSettings)}
    for name, service in _anygate_services(_compose()).items():
        if service["command"][0] != "worker":
            continue
        grace = float(service["stop_grace_period"].removesuffix("s"))
        drain = float(_params(service["command"])["shutdown_grace"])
        assert grace > drain + float(defaults["handback_s"]), name  # type: ignore[arg-type]
