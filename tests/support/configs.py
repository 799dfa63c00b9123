"""Configuration trees for tests: one function, so every test states only what it changes."""

from __future__ import annotations

import hashlib
import os
from typing import Any

from anygate.config import AnygateConfig, parse_config


def hash_key(key: str) -> str:
    """As the gateway stores keys (anygate.api.auth.hash_key); kept here so that broker-level
    tests do not import the HTTP front."""
    return hashlib.sha256(key.encode()).hexdigest()


TENANT_KEYS = {"acme": "sk-test-acme-0123456789", "globex": "sk-test-globex-0123456789"}
MOCK_KEY_ENV = "ANYGATE_TEST_MOCK_KEY"
REDIS_MODE_ENV = "ANYGATE_TEST_REDIS_MODE"
"""``cluster``: every test's Redis is a local 3-master Redis Cluster and every config says
``redis.mode: cluster`` (tests/cluster runs the core suites so)."""


def redis_mode() -> str:
    return os.environ.get(REDIS_MODE_ENV, "standalone")
FAILING_MODEL = "gpt-primary-down"


def config_tree(
    redis_url: str,
    namespace: str,
    *,
    mock_root: str = "http://127.0.0.1:9",
    queue: dict[str, Any] | None = None,
    **sections: Any,
) -> dict[str, Any]:
    tree: dict[str, Any] = {
        "redis": {"url": redis_url, "namespace": namespace, "mode": redis_mode()},
        "providers": {
            "openai": {
                "kind": "openai",
                "base_url": f"{mock_root}/v1",
                "api_key": f"env:{MOCK_KEY_ENV}",
            },
            "gemini": {"kind": "gemini", "base_url": mock_root, "api_key": f"env:{MOCK_KEY_ENV}"},
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
            "gemini-2.5-flash": {
                "deployments": [
                    {
                        "provider": "gemini",
                        "model": "gemini-2.5-flash",
                        "input_price_per_m": 0.3,
                        "output_price_per_m": 2.5,
                    }
                ]
            },
            "gemini-embedding-001": {
                "kind": "embedding",
                "deployments": [{"provider": "gemini", "model": "gemini-embedding-001"}],
            },
            # A primary that the mock can be told to fail (by its upstream model name), with a
            # fallback on the other provider.
            "resilient": {
                "deployments": [{"provider": "openai", "model": FAILING_MODEL}],
                "fallbacks": ["gemini-2.5-flash"],
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
            # Tests that count attempts share a stack (and its breakers) across tests; the
            # breaker's own tests set it tighter.
            "breaker": {"consecutive_failures": 1000, "min_calls": 1000},
            **(queue or {}),
        },
    }
    tree.update(sections)
    return tree


def build_config(redis_url: str, namespace: str, **kwargs: Any) -> AnygateConfig:
    return parse_config(config_tree(redis_url, namespace, **kwargs))
