"""The admin API in end-to-end tests: a config with an operator key, clients keyed as the
operator or as anyone, and tenants and keys made through the API."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from tests.support.configs import config_tree, hash_key
from tests.support.stack import Stack

ADMIN_KEY = "sk-test-admin-0123456789"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
JOB = {"endpoint": "/v1/chat/completions", "body": CHAT}


def admin_tree(redis_url: str, namespace: str, mock_root: str) -> dict[str, Any]:
    """The usual test config plus an operator key from the config file (stored hashed)."""
    return config_tree(
        redis_url, namespace, mock_root=mock_root, admin_api_key_sha256=[hash_key(ADMIN_KEY)]
    )


def as_admin(stack: Stack) -> httpx.AsyncClient:
    return keyed(stack, ADMIN_KEY)


def keyed(stack: Stack, key: str | None) -> httpx.AsyncClient:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(base_url=stack.url, headers=headers, timeout=30)


async def new_tenant(admin_client: httpx.AsyncClient, **settings: Any) -> str:
    tenant_id = f"t-{secrets.token_hex(4)}"
    created = await admin_client.post("/admin/tenants", json={"id": tenant_id, **settings})
    assert created.status_code == 201, created.text
    return tenant_id


async def new_key(admin_client: httpx.AsyncClient, **spec: Any) -> dict[str, Any]:
    created = await admin_client.post("/admin/keys", json=spec)
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body
