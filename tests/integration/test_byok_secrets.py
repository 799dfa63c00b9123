"""Client provider keys (BYOK) and where secrets may never be (docs/operations.md#security, issue
6).

A tenant in ``hybrid`` mode may send its own provider key, one in ``passthrough`` mode must;
either way the provider sees the client's key (the mock logs a fingerprint of the key each call
used), Redis holds it only encrypted and only until the job ends, and no log line or error
message ever contains a key: not the tenants' gateway keys, not the client's provider keys, not
the gateway's own provider key, not the admin key, not the server's encryption key.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis
from google import genai
from google.genai import types as genai_types

from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.configs import TENANT_KEYS, config_tree, hash_key
from tests.support.eventually import eventually
from tests.support.mock import MockControl
from tests.support.stack import Stack, running_stack

HYBRID_KEY = "sk-test-hybrid-tenant-5550001111"
PASS_KEY = "sk-test-passthrough-tenant-5550002222"
ADMIN_KEY = "sk-test-admin-5550003333"
OPENAI_CLIENT_KEY = "sk-client-own-openai-key-7777777777"
GEMINI_CLIENT_KEY = "AIzaClientOwnGeminiKey-88888888888888888"
ENCRYPTION_KEY = base64.b64encode(b"k" * 32).decode()
MOCK_PROVIDER_KEY = "mock-key"  # what tests/support/stack.py puts in the gateway's env


def _fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def _chat(model: str = "gpt-4o-mini", text: str = "hi") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}]}


@pytest.fixture
def byok_stack(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> Iterator[Stack]:
    key_file = tmp_path / "encryption.key"
    key_file.write_text(ENCRYPTION_KEY)
    tree = config_tree(redis_server.url, namespace, mock_root=mock.url)
    tree["tenants"] = [
        {"id": "acme", "api_key_sha256": [hash_key(TENANT_KEYS["acme"])]},
        {"id": "hy", "api_key_sha256": [hash_key(HYBRID_KEY)], "auth_mode": "hybrid"},
        {"id": "pt", "api_key_sha256": [hash_key(PASS_KEY)], "auth_mode": "passthrough"},
    ]
    tree["admin_api_key_sha256"] = [hash_key(ADMIN_KEY)]
    tree["security"] = {"encryption_key": f"file:{key_file}"}
    with running_stack(tmp_path, tree, ["openai", "gemini"]) as stack:
        yield stack


def _client(stack: Stack, headers: dict[str, str]) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=stack.url, headers=headers, timeout=30)


def _keys_used(mock: MockControl) -> list[str | None]:
    return [r["key_fingerprint"] for r in mock.requests()]


def _every_value(r: redis.Redis) -> Iterator[tuple[str, str]]:
    """Every key name and every value in the whole Redis, whatever its type."""
    for raw_name in r.scan_iter(count=1000):
        name = raw_name.decode("utf-8", "replace")
        yield name, name
        kind = r.type(raw_name).decode()
        parts: list[bytes] = []
        if kind == "string":
            parts = [r.get(raw_name) or b""]
        elif kind == "hash":
            for f, v in r.hgetall(raw_name).items():
                parts += [f, v]
        elif kind == "list":
            parts = list(r.lrange(raw_name, 0, -1))
        elif kind == "set":
            parts = list(r.smembers(raw_name))
        elif kind == "zset":
            parts = [m for m, _s in r.zrange(raw_name, 0, -1, withscores=True)]
        elif kind == "stream":
            for _id, fields in r.xrange(raw_name):
                for f, v in fields.items():
                    parts += [f, v]
        for part in parts:
            yield name, part.decode("utf-8", "replace")


async def test_hybrid_tenant_calls_with_its_own_key_and_redis_never_holds_it(
    byok_stack: Stack, mock: MockControl, redis_server: EmbeddedRedis
) -> None:
    async with _client(byok_stack, {"authorization": f"Bearer {HYBRID_KEY}"}) as client:
        own = await client.post(
            "/v1/chat/completions",
            json=_chat(),
            headers={"x-anygate-provider-key": OPENAI_CLIENT_KEY},
        )
        assert own.status_code == 200, own.text
        gateways = await client.post("/v1/chat/completions", json=_chat())
        assert gateways.status_code == 200, gateways.text
        queued = await client.post(
            "/v1/jobs",
            json={"endpoint": "/v1/chat/completions", "body": _chat()},
            headers={"x-anygate-provider-key": OPENAI_CLIENT_KEY},
        )
        assert queued.status_code == 202
        done = await client.get(f"/v1/jobs/{queued.json()['id']}?wait=10")
        assert done.json()["status"] == "succeeded"
    assert _keys_used(mock) == [
        _fingerprint(OPENAI_CLIENT_KEY),
        _fingerprint(MOCK_PROVIDER_KEY),
        _fingerprint(OPENAI_CLIENT_KEY),
    ]
    r = redis.Redis.from_url(redis_server.url)
    try:
        leaks = [
            name
            for name, value in _every_value(r)
            for secret in (OPENAI_CLIENT_KEY, HYBRID_KEY, ENCRYPTION_KEY, MOCK_PROVIDER_KEY)
            if secret in value
        ]
    finally:
        r.close()
    assert leaks == [], "no secret in clear text anywhere in Redis"


async def test_a_queued_byok_job_keeps_its_key_sealed_and_loses_it_when_cancelled(
    byok_stack: Stack, redis_server: EmbeddedRedis
) -> None:
    byok_stack.stop_workers("openai")
    prefix = f"ag:{{{byok_stack.tree['redis']['namespace']}}}:"
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        async with _client(byok_stack, {"authorization": f"Bearer {HYBRID_KEY}"}) as client:
            queued = await client.post(
                "/v1/jobs",
                json={"endpoint": "/v1/chat/completions", "body": _chat()},
                headers={"x-anygate-provider-key": OPENAI_CLIENT_KEY},
            )
            job_id = queued.json()["id"]
            sealed = r.hget(f"{prefix}job:{job_id}", "pk")
            assert sealed is not None
            assert sealed.startswith("v1:")
            assert OPENAI_CLIENT_KEY not in sealed
            cancelled = await client.post(f"/v1/jobs/{job_id}/cancel")
            assert cancelled.json()["status"] == "cancelled"
        assert r.hget(f"{prefix}job:{job_id}", "pk") is None, "deleted when the job ended"
    finally:
        r.close()


async def test_passthrough_works_with_both_sdks_unchanged(
    byok_stack: Stack, mock: MockControl
) -> None:
    with openai.OpenAI(
        base_url=f"{byok_stack.url}/v1",
        api_key=OPENAI_CLIENT_KEY,
        max_retries=0,
        default_headers={"x-anygate-api-key": PASS_KEY},
    ) as sdk:
        answer = sdk.chat.completions.create(**_chat())
    assert answer.choices[0].message.content
    gemini = genai.Client(
        api_key=GEMINI_CLIENT_KEY,
        http_options=genai_types.HttpOptions(
            base_url=byok_stack.url, headers={"x-anygate-api-key": PASS_KEY}
        ),
    )
    reply = gemini.models.generate_content(model="gemini-2.5-flash", contents="hello")
    assert reply.text
    assert _keys_used(mock) == [_fingerprint(OPENAI_CLIENT_KEY), _fingerprint(GEMINI_CLIENT_KEY)]


async def test_auth_modes_refuse_what_they_cannot_honour(byok_stack: Stack) -> None:
    async with _client(byok_stack, {"authorization": f"Bearer {TENANT_KEYS['acme']}"}) as client:
        refused = await client.post(
            "/v1/chat/completions",
            json=_chat(),
            headers={"x-anygate-provider-key": OPENAI_CLIENT_KEY},
        )
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "byok_not_enabled"
        assert refused.json()["error"]["param"] == "x-anygate-provider-key"
        assert OPENAI_CLIENT_KEY not in refused.text
    async with _client(byok_stack, {"authorization": f"Bearer {PASS_KEY}"}) as client:
        missing = await client.post("/v1/chat/completions", json=_chat())
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "provider_key_required"
    async with _client(
        byok_stack,
        {"x-anygate-api-key": PASS_KEY, "x-goog-api-key": GEMINI_CLIENT_KEY},
    ) as client:
        wrong = await client.post("/v1/chat/completions", json=_chat("gpt-4o-mini"))
        assert wrong.status_code == 400
        assert wrong.json()["error"]["param"] == "model"
        assert GEMINI_CLIENT_KEY not in wrong.text


async def test_no_log_line_holds_a_secret_after_every_auth_mode(
    byok_stack: Stack, mock: MockControl
) -> None:
    async with _client(byok_stack, {"authorization": f"Bearer {TENANT_KEYS['acme']}"}) as c:
        assert (await c.post("/v1/chat/completions", json=_chat())).status_code == 200
        bad = await c.post(
            "/v1/chat/completions",
            json=_chat(),
            headers={"authorization": "Bearer sk-not-a-real-key-000000000000"},
        )
        assert bad.status_code == 401
    async with _client(byok_stack, {"authorization": f"Bearer {HYBRID_KEY}"}) as c:
        hybrid = await c.post(
            "/v1/chat/completions",
            json=_chat(),
            headers={"x-anygate-provider-key": OPENAI_CLIENT_KEY},
        )
        assert hybrid.status_code == 200
        # an upstream failure with the client's key in flight
        mock.fault(fault="500", times=100)
        failed = await c.post(
            "/v1/jobs",
            json={"endpoint": "/v1/chat/completions", "body": _chat()},
            headers={"x-anygate-provider-key": OPENAI_CLIENT_KEY},
        )
        job = failed.json()["id"]
        await eventually(
            lambda: _status(byok_stack, job, HYBRID_KEY) in {"failed", "succeeded"}, timeout=30
        )
        mock.reset()
    async with _client(
        byok_stack, {"x-anygate-api-key": PASS_KEY, "x-goog-api-key": GEMINI_CLIENT_KEY}
    ) as c:
        gem = await c.post(
            "/v1beta/models/gemini-2.5-flash:generateContent",
            json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        )
        assert gem.status_code == 200, gem.text
    async with _client(byok_stack, {"authorization": f"Bearer {ADMIN_KEY}"}) as c:
        await c.get("/admin/tenants")
    secrets = {
        "tenant key": TENANT_KEYS["acme"],
        "hybrid tenant key": HYBRID_KEY,
        "passthrough tenant key": PASS_KEY,
        "admin key": ADMIN_KEY,
        "client openai key": OPENAI_CLIENT_KEY,
        "client gemini key": GEMINI_CLIENT_KEY,
        "encryption key": ENCRYPTION_KEY,
        "gateway provider key": MOCK_PROVIDER_KEY,
        "wrong key": "sk-not-a-real-key-000000000000",
    }
    processes = [p for p, _u in byok_stack.apis] + byok_stack.workers
    logs = "".join(p.log_path.read_text(encoding="utf-8", errors="replace") for p in processes)
    assert logs, "the processes did log"
    found = [what for what, secret in secrets.items() if secret in logs]
    assert found == []


def _status(stack: Stack, job_id: str, key: str) -> str:
    answer = httpx.get(
        f"{stack.url}/v1/jobs/{job_id}", headers={"authorization": f"Bearer {key}"}, timeout=10
    )
    return str(answer.json().get("status"))


def test_encryption_key_must_be_32_bytes() -> None:
    from anygate.broker.client_keys import parse_encryption_key  # noqa: PLC0415

    assert len(parse_encryption_key(ENCRYPTION_KEY)) == 32
    with pytest.raises(ValueError, match="32 bytes"):
        parse_encryption_key(base64.b64encode(os.urandom(16)).decode())
