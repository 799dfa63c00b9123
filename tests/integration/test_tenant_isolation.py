"""No tenant can see, cancel or even detect another's objects; a revoked key or a disabled
tenant is refused on its next request by every API replica (docs/queue-semantics.md#retention
retention, docs/operations.md#security; issue 6).

Two API processes share one Redis: keys and tenants change through one, requests go to the
other, with no wait in between.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.configs import TENANT_KEYS, config_tree, hash_key
from tests.support.mock import MockControl
from tests.support.stack import Stack, running_stack

ADMIN_KEY = "sk-test-admin-isolation-000111"


def _job(text: str = "hi") -> dict[str, Any]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
    return {"endpoint": "/v1/chat/completions", "body": body}


@pytest.fixture
def two_apis(
    tmp_path: Path, redis_server: EmbeddedRedis, namespace: str, mock: MockControl
) -> Iterator[Stack]:
    tree = config_tree(redis_server.url, namespace, mock_root=mock.url)
    tree["admin_api_key_sha256"] = [hash_key(ADMIN_KEY)]
    with running_stack(tmp_path, tree, ["openai"]) as stack:
        stack.start_api()
        yield stack


def _as(stack: Stack, key: str, api: int = 0) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=stack.apis[api][1], headers={"authorization": f"Bearer {key}"}, timeout=30
    )


def _shape(response: httpx.Response, job_id: str) -> tuple[int, str, str, str | None]:
    error = response.json()["error"]
    return (
        response.status_code,
        error["code"],
        error["message"].replace(job_id, "<id>"),
        (error["param"]),
    )


async def test_another_tenants_job_is_indistinguishable_from_no_job(two_apis: Stack) -> None:
    two_apis.stop_workers("openai")  # the job stays queued: cancel would have something to do
    async with (
        _as(two_apis, TENANT_KEYS["acme"]) as acme,
        _as(two_apis, TENANT_KEYS["globex"], api=1) as globex,
    ):
        mine = (await acme.post("/v1/jobs", json=_job(), headers={"idempotency-key": "k1"})).json()
        nobody = "job_" + secrets.token_hex(16)
        for method, template in (
            ("GET", "/v1/jobs/{}"),
            ("GET", "/v1/jobs/{}?wait=1"),
            ("GET", "/v1/jobs/{}/events"),
            ("POST", "/v1/jobs/{}/cancel"),
        ):
            theirs = await globex.request(method, template.format(mine["id"]))
            missing = await globex.request(method, template.format(nobody))
            assert theirs.status_code == 404, (method, template)
            assert _shape(theirs, mine["id"]) == _shape(missing, nobody), (method, template)
        events = await globex.get(f"/v1/jobs/{mine['id']}/events", headers={"last-event-id": "0-1"})
        assert events.status_code == 404
        listed = await globex.get("/v1/jobs", params={"after": mine["id"]})
        assert listed.status_code in {200, 400, 404}
        if listed.status_code == 200:
            assert listed.json()["data"] == []
        assert (await globex.get("/v1/jobs")).json()["data"] == []
        same_key = await globex.post("/v1/jobs", json=_job(), headers={"idempotency-key": "k1"})
        assert same_key.status_code == 202
        assert same_key.json()["id"] != mine["id"], "idempotency keys are per tenant"
        still = (await acme.get(f"/v1/jobs/{mine['id']}")).json()
        assert still["status"] == "queued", "the other tenant's cancel changed nothing"


async def test_revocation_and_disabling_hold_on_the_other_replica_at_once(
    two_apis: Stack,
) -> None:
    async with _as(two_apis, ADMIN_KEY) as admin:
        created = await admin.post("/admin/tenants", json={"id": "initech"})
        assert created.status_code == 201, created.text
        issued = await admin.post("/admin/keys", json={"tenant": "initech", "name": "t"})
        assert issued.status_code == 201, issued.text
        key, key_id = issued.json()["key"], issued.json()["id"]
        second = (await admin.post("/admin/keys", json={"tenant": "initech"})).json()
        async with _as(two_apis, key, api=1) as replica:
            for _ in range(3):  # warm the replica's cache with the key
                assert (await replica.get("/v1/jobs")).status_code == 200
            revoked = await admin.post(f"/admin/keys/{key_id}/revoke")
            assert revoked.status_code == 200, revoked.text
            refused = await replica.get("/v1/jobs")
            assert refused.status_code == 401
            assert refused.json()["error"]["type"] == "authentication_error"
        async with _as(two_apis, second["key"], api=1) as replica:
            assert (await replica.get("/v1/jobs")).status_code == 200
            await admin.patch("/admin/tenants/initech", json={"disabled": True})
            disabled = await replica.get("/v1/jobs")
            assert disabled.status_code == 403
            assert disabled.json()["error"]["code"] == "tenant_disabled"
            await admin.patch("/admin/tenants/initech", json={"disabled": False})
            assert (await replica.get("/v1/jobs")).status_code == 200
            await admin.delete("/admin/tenants/initech")
            assert (await replica.get("/v1/jobs")).status_code == 401


async def test_a_created_admin_key_works_on_every_replica_and_tenant_keys_do_not(
    two_apis: Stack,
) -> None:
    async with _as(two_apis, ADMIN_KEY) as admin:
        issued = await admin.post("/admin/keys", json={"name": "ops", "scopes": ["admin"]})
        assert issued.status_code == 201, issued.text
    async with _as(two_apis, issued.json()["key"], api=1) as operator:
        assert (await operator.get("/admin/tenants")).status_code == 200
        assert (await operator.get("/v1/jobs")).status_code == 403, "an operator has no tenant"
    async with _as(two_apis, TENANT_KEYS["acme"], api=1) as tenant:
        assert (await tenant.get("/admin/tenants")).status_code == 403
    async with httpx.AsyncClient(base_url=two_apis.apis[1][1]) as anonymous:
        assert (await anonymous.get("/admin/tenants")).status_code == 401


async def test_another_tenants_file_and_batch_are_indistinguishable_from_none(
    two_apis: Stack,
) -> None:
    line = {
        "custom_id": "a",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": _job()["body"],
    }
    async with (
        _as(two_apis, TENANT_KEYS["acme"]) as acme,
        _as(two_apis, TENANT_KEYS["globex"], api=1) as globex,
    ):
        upload = await acme.post(
            "/v1/files",
            data={"purpose": "batch"},
            files={"file": ("r.jsonl", orjson.dumps(line) + b"\n")},
        )
        assert upload.status_code == 200, upload.text
        file_id = upload.json()["id"]
        created = await acme.post(
            "/v1/batches",
            json={
                "input_file_id": file_id,
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            },
        )
        assert created.status_code == 200, created.text
        batch_id = created.json()["id"]
        no_file, no_batch = "file-" + secrets.token_urlsafe(18), "batch_" + secrets.token_hex(16)
        for method, template, real, fake in (
            ("GET", "/v1/files/{}", file_id, no_file),
            ("GET", "/v1/files/{}/content", file_id, no_file),
            ("DELETE", "/v1/files/{}", file_id, no_file),
            ("GET", "/v1/batches/{}", batch_id, no_batch),
            ("POST", "/v1/batches/{}/cancel", batch_id, no_batch),
        ):
            theirs = await globex.request(method, template.format(real))
            missing = await globex.request(method, template.format(fake))
            assert theirs.status_code == 404, (method, template)
            assert _shape(theirs, real) == _shape(missing, fake), (method, template)
        used = await globex.post(
            "/v1/batches",
            json={
                "input_file_id": file_id,
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            },
        )
        assert used.status_code == 404, "another tenant's file cannot feed a batch"
        assert (await globex.get("/v1/files")).json()["data"] == []
        assert (await globex.get("/v1/batches")).json()["data"] == []
        assert (await acme.get(f"/v1/files/{file_id}")).status_code == 200, "untouched"
        assert (await acme.get(f"/v1/batches/{batch_id}")).json()["status"] != "cancelling"
