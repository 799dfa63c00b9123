"""The admin API's tenants and keys (docs/api.md#admin-api) end to end: an API process, a worker,
real Redis and the mock provider over HTTP. Tenants are created by each test with ids of its own, so
the tests can share one stack."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from anygate.api import admin, admin_ops
from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.admin import (
    CHAT,
    JOB,
    admin_tree,
    as_admin,
    keyed,
    new_key,
    new_tenant,
)
from tests.support.configs import TENANT_KEYS
from tests.support.stack import Stack, running_stack


@pytest.fixture(scope="module")
def admin_stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis, mock_server: str
) -> Iterator[Stack]:
    tree = admin_tree(redis_server.url, f"t{secrets.token_hex(5)}", mock_server)
    with running_stack(tmp_path_factory.mktemp("admin"), tree, ["openai"]) as stack:
        yield stack


@pytest.fixture
async def admin_client(admin_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with as_admin(admin_stack) as client:
        yield client


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


class TestAdminAuth:
    async def test_every_admin_route_needs_an_admin_key(self, admin_stack: Stack) -> None:
        """401 without a key or with an unknown one, 403 with a tenant's key: on every route,
        before anything about the request (its body, its ids) is looked at."""
        calls = [
            (method, _concrete(route.path))
            for route in [*admin.ROUTES, *admin_ops.ROUTES]
            for method in sorted(route.methods or ())
            if method != "HEAD"
        ]
        assert len(calls) >= 18
        async with (
            keyed(admin_stack, None) as anonymous,
            keyed(admin_stack, "ag-not-a-key") as unknown,
            keyed(admin_stack, TENANT_KEYS["acme"]) as tenant,
        ):
            for method, path in calls:
                for client, status in ((anonymous, 401), (unknown, 401), (tenant, 403)):
                    answer = await client.request(method, path, json={})
                    assert answer.status_code == status, (method, path, answer.text)
                    assert answer.json()["error"]["type"] in {
                        "authentication_error",
                        "permission_error",
                    }

    async def test_an_operator_key_reaches_the_admin_api_and_no_tenant_data(
        self, admin_stack: Stack, admin_client: httpx.AsyncClient
    ) -> None:
        operator = await new_key(admin_client, name="ops")
        assert operator["tenant"] is None
        assert operator["scopes"] == ["admin"]
        async with keyed(admin_stack, operator["key"]) as client:
            assert (await client.get("/admin/tenants")).status_code == 200
            assert (await client.get("/v1/jobs")).status_code == 403

    async def test_scopes_must_fit_the_kind_of_key(self, admin_client: httpx.AsyncClient) -> None:
        tenant = await new_tenant(admin_client)
        for spec, param in (
            ({"scopes": ["inference"]}, "scopes"),
            ({"tenant": tenant, "scopes": ["admin"]}, "scopes"),
            ({"tenant": tenant, "scopes": ["everything"]}, "scopes[0]"),
            ({"tenant": tenant, "rpm": 0}, "rpm"),
            ({"tenant": tenant, "expires_at": time.time() - 1}, "expires_at"),
        ):
            answer = await admin_client.post("/admin/keys", json=spec)
            assert answer.status_code == 400, spec
            assert answer.json()["error"]["param"] == param
        unknown = await admin_client.post("/admin/keys", json={"tenant": "nobody-here"})
        assert unknown.status_code == 404


class TestTenants:
    async def test_create_get_list_update_delete(self, admin_client: httpx.AsyncClient) -> None:
        tenant_id = await new_tenant(admin_client, weight=3, quotas={"max_in_flight": 4})
        got = (await admin_client.get(f"/admin/tenants/{tenant_id}")).json()
        assert got["object"] == "tenant"
        assert got["weight"] == 3
        assert got["quotas"] == {"max_in_flight": 4}
        assert got["source"] == "admin"

        patched = await admin_client.patch(
            f"/admin/tenants/{tenant_id}", json={"quotas": {"max_queued": 9}, "disabled": True}
        )
        assert patched.status_code == 200
        assert patched.json()["quotas"] == {"max_in_flight": 4, "max_queued": 9}, "merged"
        assert patched.json()["disabled"] is True
        assert patched.json()["weight"] == 3, "fields not sent are unchanged"
        via_post = await admin_client.post(
            f"/admin/tenants/{tenant_id}", json={"quotas": {"max_in_flight": None}, "weight": 5}
        )
        assert via_post.status_code == 200
        assert via_post.json()["quotas"] == {"max_queued": 9}, "null lifts a quota"
        assert via_post.json()["weight"] == 5

        deleted = await admin_client.delete(f"/admin/tenants/{tenant_id}")
        assert deleted.json() == {"id": tenant_id, "object": "tenant.deleted", "deleted": True}
        assert (await admin_client.get(f"/admin/tenants/{tenant_id}")).status_code == 404
        assert (await admin_client.delete(f"/admin/tenants/{tenant_id}")).status_code == 404
        again = await admin_client.post("/admin/tenants", json={"id": tenant_id})
        assert again.status_code == 409, "a deleted tenant's id is never handed out again"
        assert again.json()["error"]["code"] == "tenant_exists"

    async def test_list_pages_with_a_cursor(self, admin_client: httpx.AsyncClient) -> None:
        for _ in range(3):
            await new_tenant(admin_client)
        seen: list[str] = []
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 2, **({"after": after} if after else {})}
            page = (await admin_client.get("/admin/tenants", params=params)).json()
            assert page["object"] == "list"
            assert len(page["data"]) <= 2
            seen += [t["id"] for t in page["data"]]
            if not page["has_more"]:
                break
            after = page["last_id"]
            assert after == page["data"][-1]["id"]
        assert seen == sorted(seen)
        assert len(seen) == len(set(seen))
        assert {"acme", "globex"} <= set(seen), "config tenants are listed too"
        assert len(seen) >= 5

    async def test_bad_bodies_name_the_field(self, admin_client: httpx.AsyncClient) -> None:
        for body, param in (
            ({"id": "has space"}, "id"),
            ({"id": "ok-id", "weight": 0}, "weight"),
            ({"id": "ok-id", "quotas": {"max_queued": 0}}, "quotas.max_queued"),
            ({"id": "ok-id", "quotas": {"rpm": 0.5}}, "quotas.rpm"),
            ({"id": "ok-id", "colour": "red"}, "colour"),
            ({"id": "ok-id", "auth_mode": "passthrough"}, "auth_mode"),
        ):
            answer = await admin_client.post("/admin/tenants", json=body)
            assert answer.status_code == 400, body
            assert answer.json()["error"]["param"] == param
        assert (await admin_client.get("/admin/tenants/ok-id")).status_code == 404
        tenant = await new_tenant(admin_client)
        answer = await admin_client.patch(f"/admin/tenants/{tenant}", json={"id": "other"})
        assert answer.status_code == 400
        missing = await admin_client.patch("/admin/tenants/nobody-here", json={"weight": 2})
        assert missing.status_code == 404


class TestKeys:
    async def test_a_new_key_is_shown_once_and_works_at_once(
        self, admin_stack: Stack, admin_client: httpx.AsyncClient
    ) -> None:
        tenant = await new_tenant(admin_client)
        created = await new_key(admin_client, tenant=tenant, name="ci")
        secret = created["key"]
        assert secret.startswith("ag-")
        assert created["scopes"] == ["inference", "jobs", "batches"]
        async with keyed(admin_stack, secret) as client:
            answer = await client.post("/v1/chat/completions", json=CHAT)
        assert answer.status_code == 200, answer.text
        listed = await admin_client.get("/admin/keys", params={"tenant": tenant})
        one = await admin_client.get(f"/admin/keys/{created['id']}")
        for shown in (listed.text, one.text):
            assert secret not in shown
            assert secret[3:20] not in shown
        assert [k["id"] for k in listed.json()["data"]] == [created["id"]]
        assert "key" not in one.json()
        assert one.json()["redacted_value"].startswith(secret[:7])
        operators = (await admin_client.get("/admin/keys")).json()["data"]
        assert all(k["tenant"] is None for k in operators)
        log = admin_stack.apis[0][0].log_path.read_text(encoding="utf-8")
        audit = [line for line in log.splitlines() if created["id"] in line]
        assert any("admin action" in line and "key.create" in line for line in audit), log[-2000:]
        assert secret not in log

    async def test_a_revoked_key_fails_on_its_next_request(
        self, admin_stack: Stack, admin_client: httpx.AsyncClient
    ) -> None:
        tenant = await new_tenant(admin_client)
        created = await new_key(admin_client, tenant=tenant)
        async with keyed(admin_stack, created["key"]) as client:
            assert (await client.get("/v1/jobs")).status_code == 200
            revoked = await admin_client.post(f"/admin/keys/{created['id']}/revoke")
            assert revoked.status_code == 200
            assert revoked.json()["revoked_at"] is not None
            answer = await client.get("/v1/jobs")
            assert answer.status_code == 401
        again = await admin_client.delete(f"/admin/keys/{created['id']}")
        assert again.status_code == 200, "revoking twice is fine"
        assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
        missing = await admin_client.post("/admin/keys/key_nothing/revoke")
        assert missing.status_code == 404

    async def test_deleting_a_tenant_revokes_its_keys(
        self, admin_stack: Stack, admin_client: httpx.AsyncClient
    ) -> None:
        tenant = await new_tenant(admin_client)
        created = await new_key(admin_client, tenant=tenant)
        await admin_client.delete(f"/admin/tenants/{tenant}")
        async with keyed(admin_stack, created["key"]) as client:
            assert (await client.get("/v1/jobs")).status_code == 401

    async def test_a_jobs_only_key_may_submit_jobs_and_not_call_chat(
        self, admin_stack: Stack, admin_client: httpx.AsyncClient
    ) -> None:
        tenant = await new_tenant(admin_client)
        created = await new_key(admin_client, tenant=tenant, scopes=["jobs"])
        async with keyed(admin_stack, created["key"]) as client:
            refused = await client.post("/v1/chat/completions", json=CHAT)
            assert refused.status_code == 403
            assert refused.json()["error"]["code"] == "insufficient_scope"
            submitted = await client.post("/v1/jobs", json=JOB)
            assert submitted.status_code == 202
            done = await client.get(f"/v1/jobs/{submitted.json()['id']}", params={"wait": 10})
            assert done.json()["status"] == "succeeded"

    async def test_a_keys_rpm_answers_429_with_retry_after(
        self, admin_stack: Stack, admin_client: httpx.AsyncClient
    ) -> None:
        tenant = await new_tenant(admin_client)
        created = await new_key(admin_client, tenant=tenant, rpm=2)
        other = await new_key(admin_client, tenant=tenant)
        async with keyed(admin_stack, created["key"]) as limited:
            assert (await limited.get("/v1/jobs")).status_code == 200
            assert (await limited.get("/v1/jobs")).status_code == 200
            refused = await limited.get("/v1/jobs")
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        async with keyed(admin_stack, other["key"]) as unlimited:
            assert (await unlimited.get("/v1/jobs")).status_code == 200, "per key, not tenant"


@pytest.fixture
def workerless(tmp_path: Path, redis_server: EmbeddedRedis, namespace: str) -> Iterator[Stack]:
    """An API process and no worker: whatever is submitted stays queued."""
    tree = admin_tree(redis_server.url, namespace, "http://127.0.0.1:9")
    with running_stack(tmp_path, tree) as stack:
        yield stack


async def test_a_patched_quota_applies_to_the_next_submit(workerless: Stack) -> None:
    """No restart: the API drops its cached tenant when the admin API changes it."""
    async with as_admin(workerless) as admin_client:
        tenant = await new_tenant(admin_client)
        created = await new_key(admin_client, tenant=tenant)
        async with keyed(workerless, created["key"]) as client:
            for _ in range(3):
                assert (await client.post("/v1/jobs", json=JOB)).status_code == 202
            patched = await admin_client.patch(
                f"/admin/tenants/{tenant}", json={"quotas": {"max_queued": 3}}
            )
            assert patched.status_code == 200
            refused = await client.post("/v1/jobs", json=JOB)
            assert refused.status_code == 429
            assert refused.json()["error"]["code"] == "queue_full"
            assert int(refused.headers["retry-after"]) >= 1
            await admin_client.patch(f"/admin/tenants/{tenant}", json={"quotas": {"max_queued": 4}})
            assert (await client.post("/v1/jobs", json=JOB)).status_code == 202
            await admin_client.patch(f"/admin/tenants/{tenant}", json={"disabled": True})
            assert (await client.get("/v1/jobs")).status_code == 403, "disabled at once"
