"""``anygate config check FILE`` and ``anygate --version``, run as a user runs them."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import yaml

from tests.support.cli import run_cli
from tests.support.configs import config_tree

SECRET_VALUE = "sk-real-secret-value-123"


def write(tmp_path: Path, tree: dict[str, Any], name: str = "anygate.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(tree), encoding="utf-8")
    return path


def a_tree() -> dict[str, Any]:
    tree = config_tree("redis://127.0.0.1:9", "tcheck")
    tree["pools"] = {"openai": {"concurrency": 12}}
    return tree


def test_version_is_the_installed_distributions(tmp_path: Path) -> None:
    done = run_cli("--version", cwd=tmp_path)
    assert done.stdout.strip() == f"anygate, version {importlib.metadata.version('anygate')}"


def test_a_good_file_is_ok_with_a_summary(tmp_path: Path) -> None:
    path = write(tmp_path, a_tree())
    out = run_cli("config", "check", str(path), cwd=tmp_path).stdout
    assert out.startswith(f"OK: {path}\n")
    assert "providers: 2 (gemini (gemini), openai (openai))" in out
    assert "openai (concurrency 12)" in out
    assert "gemini (concurrency 64)" in out
    assert "models:    5 (" in out
    assert "tenants:   2 (acme, globex)" in out


def test_a_bad_file_names_the_path_of_each_bad_field(tmp_path: Path) -> None:
    tree = a_tree()
    tree["models"]["gpt-4o-mini"]["deployments"][0]["rpm"] = -1
    tree["queue"]["heartbeat_interval_s"] = "often"
    done = run_cli("config", "check", str(write(tmp_path, tree)), cwd=tmp_path, ok=False)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "models.gpt-4o-mini.deployments[0].rpm" in done.stderr
    assert "queue.heartbeat_interval_s" in done.stderr
    assert "Traceback" not in done.stderr


def test_unknown_references_and_unreadable_files_are_errors(tmp_path: Path) -> None:
    tree = a_tree()
    tree["models"]["gpt-4o-mini"]["deployments"][0]["provider"] = "nobody"
    done = run_cli("config", "check", str(write(tmp_path, tree)), cwd=tmp_path, ok=False)
    assert done.returncode == 1
    assert "models.gpt-4o-mini.deployments[0].provider: unknown provider 'nobody'" in done.stderr
    (tmp_path / "broken.yaml").write_text("providers: [unclosed\n", encoding="utf-8")
    for path, words in (
        (tmp_path / "broken.yaml", "not valid YAML"),
        (tmp_path / "none.yaml", "cannot read"),
    ):
        done = run_cli("config", "check", str(path), cwd=tmp_path, ok=False)
        assert done.returncode == 1
        assert words in done.stderr


def test_secret_references_are_checked_for_shape_and_resolved_only_when_asked(
    tmp_path: Path,
) -> None:
    tree = a_tree()
    tree["providers"]["openai"]["api_key"] = "env:CHECK_OPENAI_KEY"
    tree["providers"]["gemini"]["api_key"] = f"file:{tmp_path / 'gemini.key'}"
    path = write(tmp_path, tree)
    # unresolved references are fine without --resolve: another machine may have them
    assert "OK:" in run_cli("config", "check", str(path), cwd=tmp_path).stdout
    done = run_cli("config", "check", "--resolve", str(path), cwd=tmp_path, ok=False)
    assert done.returncode == 1
    assert "providers.openai.api_key: environment variable CHECK_OPENAI_KEY is not set" in (
        done.stderr
    )
    assert f"providers.gemini.api_key: secret file {tmp_path / 'gemini.key'} unreadable" in (
        done.stderr
    )
    (tmp_path / "gemini.key").write_text(SECRET_VALUE + "\n", encoding="utf-8")
    env = {"CHECK_OPENAI_KEY": SECRET_VALUE}
    done = run_cli("config", "check", "--resolve", str(path), env=env, cwd=tmp_path)
    assert "every secret reference resolves" in done.stdout
    assert SECRET_VALUE not in done.stdout + done.stderr
    # a literal where a reference belongs is a shape error, and its value is not echoed
    tree["providers"]["openai"]["api_key"] = SECRET_VALUE
    done = run_cli("config", "check", str(write(tmp_path, tree)), cwd=tmp_path, ok=False)
    assert "providers.openai.api_key" in done.stderr
    assert "expected a secret reference" in done.stderr
    assert SECRET_VALUE not in done.stderr


def test_environment_overrides_are_applied_and_named(tmp_path: Path) -> None:
    path = write(tmp_path, a_tree())
    env = {"ANYGATE__SERVER__PORT": "9123"}
    out = run_cli("config", "check", str(path), env=env, cwd=tmp_path).stdout
    assert "with overrides from the environment: ANYGATE__SERVER__PORT" in out
    bad = {"ANYGATE__SERVER__PORT": "not-a-port"}
    done = run_cli("config", "check", str(path), env=bad, cwd=tmp_path, ok=False)
    assert "server.port" in done.stderr
