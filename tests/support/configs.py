"""Configuration trees for tests: one function, so every test states only what it changes."""

from __future__ import annotations

from typing import Any

from anygate.api.auth import hash_key
from anygate.config import AnygateConfig, parse_config

TENANT_KEYS = {"acme": "sk-test-acme-0123456789", "globex": "sk-test-globex-0123456789"}
MOCK_KEY_ENV = "ANYGATE_TEST_MOCK_KEY"


def config_tree(
    redis_url: str,
    namespace: str,
    *,
    mock_url: str = "http://127.0.0.1:9/v1",
    queue: dict[str, Any] | None = None,
    **sections: Any,
) -> dict[str, Any]:
    tree: dict[str, Any] = {
        "redis": {"url": redis_url, "namespace": namespace},
        "providers": {
            "openai": {"kind": "openai", "base_url": mock_url, "api_key": f"env:{MOCK_KEY_ENV}"}
        },
        "models": {
            "gpt-4o-mini": {
                "deployments": [
                    {
                        "provider": "openai",
                        "model": "gpt-4o-mini",
                        "input_price_per_m": 0.15,
                        "output_price_per_m": 0.6,
                    }
                ]
            },
            "text-embedding-3-small": {
                "kind": "embedding",
                "deployments": [{"provider": "openai", "model": "text-embedding-3-small"}],
            },
        },
        "tenants": [
            {"id": tenant, "api_key_sha256": [hash_key(key)]} for tenant, key in TENANT_KEYS.items()
        ],
        "queue": {
            "visibility_timeout_s": 3.0,
            "heartbeat_interval_s": 0.5,
            "reclaim_interval_s": 0.2,
            "retry_base_delay_s": 0.05,
            "retry_max_delay_s": 0.2,
            **(queue or {}),
        },
    }
    tree.update(sections)
    return tree


def build_config(redis_url: str, namespace: str, **kwargs: Any) -> AnygateConfig:
    return parse_config(config_tree(redis_url, namespace, **kwargs))
