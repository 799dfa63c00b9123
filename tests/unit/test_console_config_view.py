"""The Config page's pure part: masking the effective configuration, checking a pasted one."""

from __future__ import annotations

from typing import Any

import yaml

from anygate.api.console.config_view import (
    MASK,
    MAX_PASTE_BYTES,
    check_pasted,
    mask_url,
    masked_yaml,
)
from anygate.config.loader import parse_config

HASH = "ab" * 32


def tree() -> dict[str, Any]:
    return {
        "redis": {"url": "redis://app:hunter2@cache:6379/0"},
        "providers": {"openai": {"kind": "openai", "api_key": "env:OPENAI_SECRET_VAR"}},
        "models": {"fast": {"deployments": [{"provider": "openai", "model": "gpt-4o-mini"}]}},
        "admin_api_keys": ["file:/run/secrets/admin"],
        "admin_api_key_sha256": [HASH],
        "security": {"encryption_key": "env:ENC_KEY_VAR"},
    }


def test_every_secret_is_masked_and_the_rest_is_shown() -> None:
    text = masked_yaml(parse_config(tree()))
    for secret in ("hunter2", "OPENAI_SECRET_VAR", "/run/secrets/admin", HASH, "ENC_KEY_VAR"):
        assert secret not in text
    assert "redis://app:" + MASK + "@cache:6379/0" in text
    assert "api_key: " + MASK in text
    assert "gpt-4o-mini" in text
    assert "kind: openai" in text


def test_mask_url_leaves_urls_without_a_password_alone() -> None:
    assert mask_url("https://example.com/hook?a=1") == "https://example.com/hook?a=1"
    assert mask_url("rediss://:pw@h:1") == f"rediss://:{MASK}@h:1"


def test_a_valid_paste_is_summarised_without_resolving_secrets() -> None:
    result = check_pasted(yaml.safe_dump(tree()))  # the env variables named are not set
    assert result.valid
    assert result.summary is not None
    assert result.summary.providers == [("openai", "openai")]
    assert result.summary.models == ["fast"]
    assert result.summary.counts == {"providers": 1, "models": 1, "tenants": 0}


def test_an_invalid_field_is_named_by_its_path() -> None:
    result = check_pasted("queue:\n  max_attempts: -1\n")
    assert not result.valid
    assert [p for p, _m in result.problems] == ["queue.max_attempts"]


def test_a_literal_secret_is_refused_without_echoing_it() -> None:
    result = check_pasted("providers:\n  o: {kind: openai, api_key: sk-literal-123}\n")
    assert [p for p, _m in result.problems] == ["providers.o.api_key"]
    assert "sk-literal-123" not in str(result.problems)


def test_broken_yaml_aliases_and_non_mappings_are_refused() -> None:
    assert check_pasted("a: [1, 2\n").problems[0][0] == "(yaml)"
    assert "aliases" in check_pasted("a: &x [1]\nb: *x\n").problems[0][1]
    assert check_pasted("- 1\n- 2\n").problems == [
        ("(root)", "expected a mapping at the top level")
    ]
    assert check_pasted("").valid


def test_an_oversize_paste_is_refused_before_parsing() -> None:
    result = check_pasted("#" * (MAX_PASTE_BYTES + 1))
    assert result.problems == [("(paste)", "too large: at most 256 KiB is checked")]
