"""Configuration: one validated model; errors name the exact path; secrets are references."""

from __future__ import annotations

from pathlib import Path

import pytest

from anygate.config import ConfigError, SecretRef, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]

BASE = {
    "providers": {"openai": {"kind": "openai", "api_key": "env:OPENAI_API_KEY"}},
    "models": {"fast": {"deployments": [{"provider": "openai", "model": "gpt-4o-mini"}]}},
}


def problems(tree: dict[str, object]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        parse_config(tree)
    return info.value.problems


def test_defaults_are_a_valid_config() -> None:
    config = load_config(None, environ={})
    assert config.server.port == 8080
    assert config.queue.weights.interactive == 16


def test_error_names_the_exact_path() -> None:
    tree = {
        **BASE,
        "models": {
            "fast": {
                "deployments": [
                    {"provider": "openai", "model": "a"},
                    {"provider": "openai", "model": "b", "rpm": -1},
                ]
            }
        },
    }
    assert problems(tree)[0][0] == "models.fast.deployments[1].rpm"


def test_unknown_keys_are_errors() -> None:
    path, message = problems({**BASE, "servr": {}})[0]
    assert path == "servr"
    assert "Extra inputs" in message


def test_unknown_provider_reference_is_named() -> None:
    tree = {**BASE, "models": {"m": {"deployments": [{"provider": "nope", "model": "x"}]}}}
    assert "models.m.deployments[0].provider" in problems(tree)[0][1]


def test_literal_secret_is_refused_without_echoing_it() -> None:
    tree = {"providers": {"openai": {"kind": "openai", "api_key": "sk-live-secret"}}}
    path, message = problems(tree)[0]
    assert path == "providers.openai.api_key"
    assert "sk-live-secret" not in message


def test_heartbeat_must_fit_twice_in_the_lease() -> None:
    tree = {"queue": {"visibility_timeout_s": 5, "heartbeat_interval_s": 3}}
    assert "heartbeat_interval_s" in problems(tree)[0][1]


def test_env_overrides_win_and_keep_their_types(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("server: {port: 9000}\n")
    config = load_config(
        path, environ={"ANYGATE__SERVER__PORT": "9100", "ANYGATE__QUEUE__MAX_ATTEMPTS": "3"}
    )
    assert config.server.port == 9100
    assert config.queue.max_attempts == 3


def test_config_path_comes_from_anygate_config(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("log_level: debug\n")
    assert load_config(environ={"ANYGATE_CONFIG": str(path)}).log_level == "debug"


def test_unreadable_and_invalid_yaml_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml", environ={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad, environ={})


def test_secret_refs_resolve_from_env_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AG_TEST_SECRET", "from-env")
    secret_file = tmp_path / "key"
    secret_file.write_text("from-file\n")
    assert SecretRef.parse("env:AG_TEST_SECRET").resolve().get_secret_value() == "from-env"
    assert SecretRef.parse(f"file:{secret_file}").resolve().get_secret_value() == "from-file"
    assert "from-env" not in repr(SecretRef.parse("env:AG_TEST_SECRET").resolve())


def test_compose_config_is_valid() -> None:
    load_config(ROOT / "ops" / "compose-config.yaml", environ={})


def test_readme_config_example_is_valid(tmp_path: Path) -> None:
    """The README's YAML is what users copy: it must stay a valid configuration."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "readme-config.yaml"
    path.write_text(block)
    config = load_config(path, environ={})
    assert config.models["gpt-4o-mini"].fallbacks == ("gemini-2.5-flash",)


def test_quota_and_breaker_fields_are_named_when_wrong() -> None:
    tenant = {"id": "acme", "quotas": {"max_in_flight": 0}}
    assert problems({**BASE, "tenants": [tenant]})[0][0] == "tenants[0].quotas.max_in_flight"
    tenant = {"id": "acme", "quotas": {"max_inflight": 3}}  # a typo is not silently ignored
    assert problems({**BASE, "tenants": [tenant]})[0][0] == "tenants[0].quotas.max_inflight"
    breaker = {"queue": {"breaker": {"error_rate": 1.5}}}
    assert problems({**BASE, **breaker})[0][0] == "queue.breaker.error_rate"


def test_a_tenant_rate_below_one_per_window_is_refused() -> None:
    tree = {
        **BASE,
        "queue": {"rate_limit_window_s": 1},
        "tenants": [{"id": "acme", "quotas": {"rpm": 30}}],
    }
    message = problems(tree)[0][1]
    assert "tenants[0].quotas.rpm" in message


def test_the_rate_window_must_divide_the_rate_minute() -> None:
    assert "divide" in problems({"queue": {"rate_limit_window_s": 7}})[0][1]
    compressed = {"queue": {"rate_limit_minute_s": 2, "rate_limit_window_s": 2}}
    assert parse_config(compressed).queue.rate_limit_minute_s == 2
    too_long = {"queue": {"rate_limit_minute_s": 2, "rate_limit_window_s": 4}}
    assert "exceed" in problems(too_long)[0][1]
