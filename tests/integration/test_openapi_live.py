"""``/openapi.json`` against a running API: it is served without a key and is the document the
code builds, and every operation it lists, called on the live server (with the document's own
request examples as bodies), answers with a status, media type and JSON the document states.

One stack (API, an ``openai`` worker, the mock provider) with an operator key; the tenant
created here has an id of its own.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from anygate.api.openapi import document
from anygate.api.openapi_native import EVENT_TYPES
from anygate.config import parse_config
from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.admin import ADMIN_KEY, admin_tree
from tests.support.batches import batch_line, jsonl
from tests.support.configs import TENANT_KEYS
from tests.support.openapi import answer_problems
from tests.support.stack import Stack, running_stack

MODEL = "gpt-4o-mini"


@pytest.fixture(scope="module")
def ref_stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis, mock_server: str
) -> Iterator[Stack]:
    tree = admin_tree(redis_server.url, f"t{secrets.token_hex(5)}", mock_server)
    with running_stack(tmp_path_factory.mktemp("openapi"), tree, ["openai"]) as stack:
        yield stack


class Caller:
    """Calls operations by their path template and checks each answer against the document;
    remembers which operations were called."""

    def __init__(self, doc: dict[str, Any], base_url: str) -> None:
        self.doc = doc
        self.base_url = base_url
        self.called: set[tuple[str, str]] = set()
        self.problems: list[str] = []

    def client(self, key: str | None = None, header: str = "authorization") -> httpx.AsyncClient:
        headers = {}
        if key is not None:
            headers[header] = f"Bearer {key}" if header == "authorization" else key
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30)

    def check(self, method: str, template: str, response: httpx.Response) -> httpx.Response:
        self.called.add((method, template))
        self.problems += answer_problems(self.doc, method, template, response)
        return response

    async def call(
        self,
        client: httpx.AsyncClient,
        method: str,
        template: str,
        values: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        path = template.format(**(values or {}))
        return self.check(method, template, await client.request(method, path, **kwargs))

    def example(self, method: str, template: str) -> Any:
        op = self.doc["paths"][template][method.lower()]
        return op["requestBody"]["content"]["application/json"]["example"]

    def missing(self) -> list[str]:
        listed = {
            (method.upper(), path) for path, item in self.doc["paths"].items() for method in item
        }
        return sorted(f"{m} {p}" for m, p in listed - self.called)


async def test_served_without_a_key_and_equal_to_the_in_process_document(
    ref_stack: Stack,
) -> None:
    async with httpx.AsyncClient(base_url=ref_stack.url) as client:
        served = await client.get("/openapi.json")
        again = await client.get("/openapi.json", headers={"if-none-match": served.headers["etag"]})
    assert served.status_code == 200, served.text
    assert served.json() == document(parse_config(ref_stack.tree))
    assert again.status_code == 304


async def test_every_operation_answers_as_the_document_says(ref_stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=ref_stack.url) as anonymous:
        doc = (await anonymous.get("/openapi.json")).json()
    api = Caller(doc, ref_stack.url)
    async with (
        api.client() as nobody,
        api.client(TENANT_KEYS["acme"]) as tenant,
        api.client(TENANT_KEYS["acme"], "x-goog-api-key") as google,
        api.client(ADMIN_KEY) as admin,
    ):
        await _ops(api, nobody, admin)
        job_id = await _jobs(api, tenant)
        await _files_and_batches(api, tenant)
        await _compatible(api, tenant, google)
        await _admin(api, admin, nobody)
        assert job_id
    assert not api.problems, "\n".join(api.problems)
    assert not api.missing(), "operations never called: " + ", ".join(api.missing())


async def _ops(api: Caller, nobody: httpx.AsyncClient, admin: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert (await api.call(nobody, "GET", path)).status_code == 200
    assert (await api.call(admin, "GET", "/metrics")).status_code == 200
    assert (await api.call(nobody, "GET", "/metrics")).status_code == 401


async def _jobs(api: Caller, tenant: httpx.AsyncClient) -> str:
    submitted = await api.call(tenant, "POST", "/v1/jobs", json=api.example("POST", "/v1/jobs"))
    assert submitted.status_code == 202, submitted.text
    ids = {"job_id": submitted.json()["id"]}
    done = await api.call(tenant, "GET", "/v1/jobs/{job_id}", ids, params={"wait": 20})
    assert done.json()["status"] == "succeeded", done.text
    async with aconnect_sse(tenant, "GET", f"/v1/jobs/{ids['job_id']}/events") as source:
        api.check("GET", "/v1/jobs/{job_id}/events", source.response)
        events = [sse.event async for sse in source.aiter_sse()]
    assert events[0] == "queued"
    assert events[-1] == "completed"
    assert set(events) <= set(EVENT_TYPES)
    assert (await api.call(tenant, "POST", "/v1/jobs/{job_id}/cancel", ids)).status_code == 200
    assert (await api.call(tenant, "GET", "/v1/jobs", params={"limit": 5})).status_code == 200
    missing = await api.call(tenant, "GET", "/v1/jobs/{job_id}", {"job_id": "nope"})
    assert missing.status_code == 404
    bad = await api.call(tenant, "POST", "/v1/jobs", json={"endpoint": "/v1/chat/completions"})
    assert bad.status_code == 400
    assert (await api.call(tenant, "GET", "/v1/usage")).status_code == 200
    return ids["job_id"]


async def _files_and_batches(api: Caller, tenant: httpx.AsyncClient) -> None:
    upload = await api.call(
        tenant,
        "POST",
        "/v1/files",
        data={"purpose": "batch"},
        files={"file": ("in.jsonl", jsonl([batch_line(0), batch_line(1)]))},
    )
    assert upload.status_code == 200, upload.text
    file_ids = {"file_id": upload.json()["id"]}
    for template in ("/v1/files", "/v1/files/{file_id}", "/v1/files/{file_id}/content"):
        assert (await api.call(tenant, "GET", template, file_ids)).status_code == 200
    spec = {**api.example("POST", "/v1/batches"), "input_file_id": file_ids["file_id"]}
    created = await api.call(tenant, "POST", "/v1/batches", json=spec)
    assert created.status_code == 200, created.text
    ids = {"batch_id": created.json()["id"]}
    assert (await api.call(tenant, "GET", "/v1/batches")).status_code == 200
    assert (await api.call(tenant, "GET", "/v1/batches/{batch_id}", ids)).status_code == 200
    cancelled = await api.call(tenant, "POST", "/v1/batches/{batch_id}/cancel", ids)
    assert cancelled.status_code == 200
    deleted = await api.call(tenant, "DELETE", "/v1/files/{file_id}", file_ids)
    assert deleted.status_code == 200


async def _compatible(api: Caller, tenant: httpx.AsyncClient, google: httpx.AsyncClient) -> None:
    for path in ("/v1/chat/completions", "/v1/embeddings"):
        answer = await api.call(tenant, "POST", path, json=api.example("POST", path))
        assert answer.status_code == 200, answer.text
    model = {"target": MODEL}
    assert (await api.call(tenant, "GET", "/v1/models")).status_code == 200
    assert (await api.call(tenant, "GET", "/v1/models/{target}", model)).status_code == 200
    assert (await api.call(google, "GET", "/v1/models/{target}", model)).status_code == 200
    assert (await api.call(google, "GET", "/v1beta/models")).status_code == 200
    assert (await api.call(google, "GET", "/v1beta/models/{target}", model)).status_code == 200
    unknown = await api.call(google, "GET", "/v1beta/models/{target}", {"target": "nope"})
    assert unknown.status_code == 404
    action = {"target": f"{MODEL}:generateContent"}
    for template in ("/v1beta/models/{target}", "/v1/models/{target}"):
        body = api.example("POST", template)
        answer = await api.call(google, "POST", template, action, json=body)
        assert answer.status_code == 200, answer.text
    chat = {**api.example("POST", "/v1/chat/completions"), "stream": True}
    streamed = await api.call(tenant, "POST", "/v1/chat/completions", json=chat)
    assert streamed.text.rstrip().endswith("data: [DONE]")
    stream = {"target": f"{MODEL}:streamGenerateContent"}
    body = api.example("POST", "/v1beta/models/{target}")
    pieces = await api.call(google, "POST", "/v1beta/models/{target}", stream, json=body)
    assert isinstance(pieces.json(), list)
    sse = await api.call(
        google, "POST", "/v1beta/models/{target}", stream, json=body, params={"alt": "sse"}
    )
    assert sse.text.startswith("data: ")


async def _admin(api: Caller, admin: httpx.AsyncClient, nobody: httpx.AsyncClient) -> None:
    tenant_id = f"t-{secrets.token_hex(4)}"
    spec = {**api.example("POST", "/admin/tenants"), "id": tenant_id}
    created = await api.call(admin, "POST", "/admin/tenants", json=spec)
    assert created.status_code == 201, created.text
    ids = {"tenant_id": tenant_id}
    one = "/admin/tenants/{tenant_id}"
    assert (await api.call(admin, "GET", "/admin/tenants")).status_code == 200
    assert (await api.call(admin, "GET", one, ids)).status_code == 200
    for method in ("PATCH", "POST"):
        changed = await api.call(admin, method, one, ids, json=api.example(method, one))
        assert changed.status_code == 200, changed.text
    key_spec = {**api.example("POST", "/admin/keys"), "tenant": tenant_id}
    key = await api.call(admin, "POST", "/admin/keys", json=key_spec)
    assert key.status_code == 201, key.text
    key_ids = {"key_id": key.json()["id"]}
    listed = await api.call(admin, "GET", "/admin/keys", params={"tenant": tenant_id})
    assert listed.status_code == 200
    assert (await api.call(admin, "GET", "/admin/keys/{key_id}", key_ids)).status_code == 200
    revoked = await api.call(admin, "POST", "/admin/keys/{key_id}/revoke", key_ids)
    assert revoked.status_code == 200
    assert (await api.call(admin, "DELETE", "/admin/keys/{key_id}", key_ids)).status_code == 200
    assert (await api.call(admin, "GET", "/admin/usage")).status_code == 200
    csv = await api.call(admin, "GET", "/admin/usage", params={"format": "csv"})
    assert csv.text.startswith("tenant,model,date")
    for path in ("/admin/queues", "/admin/workers", "/admin/deployments"):
        assert (await api.call(admin, "GET", path)).status_code == 200
    pool = {"pool": "openai"}
    for path in ("/admin/pools/{pool}/pause", "/admin/pools/{pool}/resume"):
        assert (await api.call(admin, "POST", path, pool)).status_code == 200
    dead = await api.call(admin, "GET", "/admin/dead-letters", params=pool)
    assert dead.status_code == 200
    requeue = api.example("POST", "/admin/dead-letters/requeue")
    answer = await api.call(admin, "POST", "/admin/dead-letters/requeue", json=requeue)
    assert answer.status_code == 200, answer.text
    assert (await api.call(nobody, "GET", "/admin/queues")).status_code == 401
    assert (await api.call(admin, "DELETE", one, ids)).status_code == 200
