"""Seeing what the gateway did, end to end (docs/operations.md#logs, docs/api.md#usage): the real
API process writes one access-log line per request with its fields and no key, a worker one line
per job state change, ``GET /v1/usage`` answers a tenant with its own usage only, and the admin
export's CSV holds the same rows as its JSON."""

from __future__ import annotations

import csv
import io
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from anygate.ops.embedded_redis import EmbeddedRedis
from tests.support.admin import JOB, admin_tree, as_admin, keyed, new_key, new_tenant
from tests.support.eventually import eventually
from tests.support.mock import MockControl
from tests.support.processes import ManagedProcess
from tests.support.stack import Stack, running_stack

CHAT = JOB["body"]


@pytest.fixture(scope="module")
def obs_stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: EmbeddedRedis, mock_server: str
) -> Iterator[Stack]:
    tree = admin_tree(redis_server.url, f"t{secrets.token_hex(5)}", mock_server)
    with running_stack(tmp_path_factory.mktemp("obs"), tree, ["openai"]) as stack:
        yield stack


def events(proc: ManagedProcess, name: str) -> list[dict[str, Any]]:
    """The JSON log lines of ``proc`` whose event is ``name``."""
    found = []
    for line in Path(proc.log_path).read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        event = orjson.loads(line)
        if event.get("event") == name:
            found.append(event)
    return found


async def tenant_with_key(admin_client: httpx.AsyncClient) -> tuple[str, str, str]:
    tenant = await new_tenant(admin_client)
    created = await new_key(admin_client, tenant=tenant)
    return tenant, created["id"], created["key"]


async def test_the_api_logs_one_line_per_request_and_workers_each_job_state(
    obs_stack: Stack,
) -> None:
    async with as_admin(obs_stack) as admin_client:
        tenant, key_id, key = await tenant_with_key(admin_client)
    request_id = f"req-{secrets.token_hex(6)}"
    async with keyed(obs_stack, key) as client:
        submitted = await client.post("/v1/jobs", json=JOB, headers={"x-request-id": request_id})
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        done = await client.get(f"/v1/jobs/{job_id}", params={"wait": 10}, timeout=20)
        assert done.json()["status"] == "succeeded"
        assert (await client.get("/v1/jobs/job_nope")).status_code == 404
    async with keyed(obs_stack, None) as anonymous:
        # Google's query-string form: the key is in the URL, and must not reach the log
        assert (await anonymous.get("/v1/jobs", params={"key": key})).status_code == 200
        assert (await anonymous.get("/v1/jobs")).status_code == 401

    api, _url = obs_stack.apis[0]

    def mine() -> list[dict[str, Any]]:
        return [e for e in events(api, "http request") if e.get("tenant") == tenant]

    await eventually(lambda: len(mine()) >= 4, what="4 access-log lines of the tenant")
    lines = mine()
    assert [(e["method"], e["route"], e["status"]) for e in lines] == [
        ("POST", "/v1/jobs", 202),
        ("GET", "/v1/jobs/{job_id}", 200),
        ("GET", "/v1/jobs/{job_id}", 404),
        ("GET", "/v1/jobs", 200),
    ]
    submit = lines[0]
    assert submit["key_id"] == key_id
    assert submit["request_id"] == request_id
    assert submit["job_id"] == job_id
    assert submit["level"] == "info"
    assert submit["duration_ms"] >= 0
    refused = [
        e for e in events(api, "http request") if e["status"] == 401 and e["route"] == "/v1/jobs"
    ]
    assert refused, "an unauthenticated request is logged too, without a tenant"
    assert refused[-1]["tenant"] is None
    assert key not in Path(api.log_path).read_text(encoding="utf-8")

    worker = obs_stack.workers[0]

    def states() -> list[str]:
        return [
            e["event"]
            for name in ("job started", "job succeeded")
            for e in events(worker, name)
            if e["job_id"] == job_id
        ]

    await eventually(lambda: len(states()) == 2, what="the job's state lines")
    assert states() == ["job started", "job succeeded"]
    succeeded = next(e for e in events(worker, "job succeeded") if e["job_id"] == job_id)
    assert succeeded["tenant"] == tenant
    assert succeeded["model"] == "gpt-4o-mini"
    assert succeeded["deployment"] == "openai:gpt-4o-mini"
    assert succeeded["attempt"] == 1


def _write_usage(stack: Stack, tenant: str, day: str, model: str, tokens: int) -> None:
    """What finish-5.lua adds for one call, written directly: a day the test cannot wait for."""
    tree = stack.tree["redis"]
    r = redis.Redis.from_url(tree["url"], decode_responses=True)
    key = f"ag:{{{tree['namespace']}}}:usage:{tenant}:{day}"
    r.hset(
        key,
        mapping={
            f"{model}:requests": 1,
            f"{model}:prompt_tokens": tokens,
            f"{model}:completion_tokens": 1,
            f"{model}:cost_usd": "0.5",
        },
    )
    r.close()


async def test_a_tenant_sees_its_own_usage_only(obs_stack: Stack, mock: MockControl) -> None:
    mock.settings(prompt_tokens=11, completion_tokens=7)
    async with as_admin(obs_stack) as admin_client:
        (a, _ka_id, ka), (b, _kb_id, kb) = [await tenant_with_key(admin_client) for _ in range(2)]
    _write_usage(obs_stack, b, "20250105", "gpt-4o-mini", 99)
    async with keyed(obs_stack, ka) as client_a, keyed(obs_stack, kb) as client_b:
        for _ in range(2):
            assert (await client_a.post("/v1/chat/completions", json=CHAT)).status_code == 200
        today = time.strftime("%Y-%m-%d", time.gmtime())
        usage_a = (await client_a.get("/v1/usage")).json()
        assert usage_a["start"] == usage_a["end"] == today
        assert [(r["tenant"], r["model"], r["requests"]) for r in usage_a["data"]] == [
            (a, "gpt-4o-mini", 2)
        ]
        assert usage_a["data"][0]["total_tokens"] == 36
        assert usage_a["totals"]["total_tokens"] == 36
        assert usage_a["totals"]["cost_usd"] == pytest.approx(2 * (11 * 0.15 + 7 * 0.6) / 1e6)
        # the other tenant's history is its own: a's key never sees it, whatever it asks
        old = {"start": "2025-01-01", "end": "2025-01-31", "tenant": b}
        assert (await client_a.get("/v1/usage", params=old)).json()["data"] == []
        usage_b = (await client_b.get("/v1/usage", params=old)).json()
        assert [(r["tenant"], r["date"], r["prompt_tokens"]) for r in usage_b["data"]] == [
            (b, "2025-01-05", 99)
        ]
        assert (await client_b.get("/v1/usage")).json()["data"] == []
        for params in (
            {"start": "2025-01-02", "end": "2025-01-01"},
            {"start": "2024-01-01", "end": "2025-01-01"},
            {"start": "2025-1-1"},
        ):
            answer = await client_a.get("/v1/usage", params=params)
            assert answer.status_code == 400, params
            assert answer.json()["error"]["param"] == "start"
    async with as_admin(obs_stack) as admin_client:
        refused = await admin_client.get("/v1/usage")
        # the config file's operator key is no tenant's key: it has no usage to show here
        assert refused.status_code == 401


async def test_the_admin_csv_export_matches_its_json(obs_stack: Stack) -> None:
    async with as_admin(obs_stack) as admin_client:
        tenant, _key_id, _key = await tenant_with_key(admin_client)
        _write_usage(obs_stack, tenant, "20250301", "gpt-4o-mini", 5)
        _write_usage(obs_stack, tenant, "20250302", "gemini-2.5-flash", 6)
        _write_usage(obs_stack, tenant, "20250302", "gpt-4o-mini", 7)
        params = {"from": "2025-03-01", "to": "2025-03-31"}
        as_json = (await admin_client.get("/admin/usage", params=params)).json()["data"]
        as_csv = await admin_client.get("/admin/usage", params={**params, "format": "csv"})
        bad = await admin_client.get("/admin/usage", params={**params, "format": "xml"})
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in as_csv.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert as_csv.text.splitlines()[0] == (
        "tenant,model,date,requests,prompt_tokens,completion_tokens,total_tokens,cost_usd"
    )
    assert len(rows) == len(as_json) >= 3
    for row, item in zip(rows, as_json, strict=True):
        assert row == {name: str(item[name]) for name in row}
    assert [(r["tenant"], r["date"], r["model"]) for r in rows if r["tenant"] == tenant] == [
        (tenant, "2025-03-01", "gpt-4o-mini"),
        (tenant, "2025-03-02", "gemini-2.5-flash"),
        (tenant, "2025-03-02", "gpt-4o-mini"),
    ]
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "format"
