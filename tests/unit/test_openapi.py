"""``/openapi.json`` describes exactly the routes the app serves, is a valid OpenAPI 3.1
document, and its request-body schemas agree with the server's own checks: each example is one
the server's validation accepts, and bodies the server refuses the schemas refuse too.

The app is built in-process without its lifespan (no Redis needed): ``app.routes`` is what
Starlette dispatches on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate as validate_openapi
from starlette.routing import Route

from anygate.api import create_app
from anygate.api.admin import NewKey, NewTenant, key_scopes
from anygate.api.admin_ops import RequeueDead
from anygate.api.batches import CreateBatch
from anygate.api.console.render import PREFIX as CONSOLE
from anygate.api.openapi import document
from anygate.broker import JobRecord, JobStatus
from anygate.broker.batch_store import Batch
from anygate.broker.errors import InvalidRequestError
from anygate.config import AnygateConfig, Priority, TenantSettings, parse_config
from anygate.core.body import validate
from anygate.core.schemas import BODY_MODELS, ChatCompletionBody, EmbeddingsBody, SubmitJob
from anygate.core.translate import CHAT_FIELD_NAMES, gemini_request_to_chat
from anygate.workers.budget_policy import Crossing
from tests.support.openapi import pointer, validator_at

CONFIGS: dict[str, dict[str, Any]] = {
    "metrics-admin": {},
    "metrics-open": {"metrics": {"api_access": "open"}},
    "metrics-port": {"metrics": {"api_access": "port", "api_port": 9464}},
    "metrics-off": {"metrics": {"enabled": False}},
}
_CONVERTOR = re.compile(r"{([^}:]+):[^}]+}")
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def routed(config: AnygateConfig) -> list[tuple[str, str]]:
    """Every (method, path) the app dispatches, in OpenAPI's path syntax. Starlette answers
    HEAD for every GET route by itself; that is not an operation of ours."""
    pairs: list[tuple[str, str]] = []
    for route in create_app(config).routes:
        if route.path == CONSOLE or route.path.startswith(f"{CONSOLE}/"):
            continue  # the web console: HTML pages, not API operations (docs/console.md)
        assert isinstance(route, Route), f"not a plain route: {route!r}"
        path = _CONVERTOR.sub(r"{\1}", route.path)
        pairs += [(m, path) for m in sorted(route.methods or ()) if m != "HEAD"]
    return pairs


def documented(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in HTTP_METHODS
    ]


def coverage_problems(routes: list[tuple[str, str]], ops: list[tuple[str, str]]) -> list[str]:
    problems = [f"routed but not in /openapi.json: {m} {p}" for m, p in routes if (m, p) not in ops]
    problems += [
        f"in /openapi.json but not routed: {m} {p}" for m, p in ops if (m, p) not in routes
    ]
    problems += [f"routed twice: {m} {p}" for m, p in set(routes) if routes.count((m, p)) > 1]
    return sorted(problems)


def test_the_coverage_check_names_what_is_missing() -> None:
    routes = [("GET", "/a"), ("POST", "/b/{x}")]
    ops = [("GET", "/a"), ("DELETE", "/c")]
    assert coverage_problems(routes, ops) == [
        "in /openapi.json but not routed: DELETE /c",
        "routed but not in /openapi.json: POST /b/{x}",
    ]


@pytest.mark.parametrize("name", CONFIGS)
def test_every_route_has_exactly_one_operation_and_every_operation_is_routed(name: str) -> None:
    config = parse_config(CONFIGS[name])
    problems = coverage_problems(routed(config), documented(document(config)))
    assert not problems, "\n".join(problems)


def test_metrics_security_follows_its_access_setting() -> None:
    admin = document(parse_config({}))["paths"]["/metrics"]["get"]
    assert admin["security"]
    assert "401" in admin["responses"]
    open_ = document(parse_config(CONFIGS["metrics-open"]))["paths"]["/metrics"]["get"]
    assert open_["security"] == []
    assert "401" not in open_["responses"]


@pytest.mark.parametrize("name", CONFIGS)
def test_the_document_is_valid_openapi_3_1(name: str) -> None:
    doc = document(parse_config(CONFIGS[name]))
    assert doc["openapi"].startswith("3.1")
    validate_openapi(doc)


def test_every_operation_id_is_unique_and_every_operation_answers_errors() -> None:
    doc = document(parse_config({}))
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    for item in doc["paths"].values():
        for op in item.values():
            assert "default" in op["responses"], op["operationId"]
            assert any(s.startswith("2") for s in op["responses"]), op["operationId"]


# --- request bodies agree with the server's checks -------------------------------------------


def _submit(body: Any) -> None:
    spec = validate(SubmitJob, body)
    validate(BODY_MODELS[spec.endpoint], spec.body, prefix="body")


def _key(body: Any) -> None:
    spec = validate(NewKey, body)
    key_scopes(spec.tenant, spec.scopes)


def _gemini(body: Any) -> None:
    validate(ChatCompletionBody, gemini_request_to_chat(body, model="m"), names=CHAT_FIELD_NAMES)


SERVER_CHECKS: dict[str, Callable[[Any], object]] = {
    "submitJob": _submit,
    "createBatch": lambda b: validate(CreateBatch, b),
    "createTenant": lambda b: validate(NewTenant, b),
    "updateTenant": lambda b: validate(TenantSettings, b),
    "updateTenantPost": lambda b: validate(TenantSettings, b),
    "createKey": _key,
    "requeueDeadLetters": lambda b: validate(RequeueDead, b),
    "createChatCompletion": lambda b: validate(ChatCompletionBody, b),
    "createEmbedding": lambda b: validate(EmbeddingsBody, b),
    "geminiModelAction": _gemini,
    "geminiModelActionV1": _gemini,
}
"""What each handler runs on its JSON body before anything is queued or stored."""


def json_bodies(doc: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """op id -> (pointer to its JSON body schema, its example)."""
    found = {}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            content = op.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                at = pointer(
                    "paths", path, method, "requestBody", "content", "application/json", "schema"
                )
                found[op["operationId"]] = (at, content["application/json"].get("example"))
    return found


DOC = document(parse_config({}))


def test_every_json_body_has_an_example_and_a_server_check() -> None:
    bodies = json_bodies(DOC)
    assert set(bodies) == set(SERVER_CHECKS)
    assert all(example is not None for _, example in bodies.values())


@pytest.mark.parametrize("op_id", sorted(SERVER_CHECKS))
def test_each_example_is_accepted_by_its_schema_and_by_the_server(op_id: str) -> None:
    pointer, example = json_bodies(DOC)[op_id]
    errors = [e.message for e in validator_at(DOC, pointer).iter_errors(example)]
    assert not errors, errors
    SERVER_CHECKS[op_id](example)  # raises InvalidRequestError if the server would refuse it


JOB: dict[str, Any] = {
    "endpoint": "/v1/chat/completions",
    "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
}
CHAT: dict[str, Any] = JOB["body"]
REFUSED: dict[str, tuple[str, dict[str, Any]]] = {
    "unknown field": ("submitJob", {**JOB, "colour": "blue"}),
    "priority": ("submitJob", {**JOB, "priority": "urgent"}),
    "endpoint": ("submitJob", {**JOB, "endpoint": "/v1/completions"}),
    "metadata count": ("submitJob", {**JOB, "metadata": {f"k{n}": "v" for n in range(17)}}),
    "metadata value": ("submitJob", {**JOB, "metadata": {"k": 1}}),
    "webhook scheme": ("submitJob", {**JOB, "webhook_url": "ftp://example.com/hook"}),
    "deadline": ("submitJob", {**JOB, "deadline": 0}),
    "body required": ("submitJob", {"endpoint": "/v1/chat/completions"}),
    "body.messages": ("submitJob", {**JOB, "body": {**CHAT, "messages": []}}),
    "body.n": ("submitJob", {**JOB, "body": {**CHAT, "n": 0}}),
    "body.temperature": ("submitJob", {**JOB, "body": {**CHAT, "temperature": 2.5}}),
    "embeddings body": (
        "submitJob",
        {"endpoint": "/v1/embeddings", "body": {"model": "e", "input": "x", "dimensions": 0}},
    ),
    "chat role": ("createChatCompletion", {**CHAT, "messages": [{"role": "robot"}]}),
    "batch window": (
        "createBatch",
        {"input_file_id": "file-1", "endpoint": "/v1/embeddings", "completion_window": "1h"},
    ),
    "tenant id": ("createTenant", {"id": "not a tenant id"}),
    "tenant weight": ("updateTenant", {"weight": 0}),
    "key scopes": ("createKey", {"tenant": "acme", "scopes": []}),
    "key rpm": ("createKey", {"tenant": "acme", "rpm": 0}),
    "requeue pool": ("requeueDeadLetters", {"job_ids": ["j"]}),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_what_the_server_refuses_the_schema_refuses(case: str) -> None:
    op_id, body = REFUSED[case]
    pointer, _ = json_bodies(DOC)[op_id]
    with pytest.raises(InvalidRequestError):
        SERVER_CHECKS[op_id](body)
    assert not validator_at(DOC, pointer).is_valid(body), f"the schema accepts {body}"


def test_request_models_come_with_their_definitions_hoisted() -> None:
    schemas = DOC["components"]["schemas"]
    assert "$defs" not in schemas["SubmitJob"]
    assert schemas["SubmitJob"]["properties"]["priority"]["$ref"] == (
        "#/components/schemas/Priority"
    )
    assert schemas["TenantQuotas"]["additionalProperties"] is False


# --- served ----------------------------------------------------------------------------------


async def test_served_without_a_key_cacheable_and_equal_to_the_document() -> None:
    config = parse_config({})
    transport = httpx.ASGITransport(app=create_app(config))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        first = await client.get("/openapi.json")
        again = await client.get("/openapi.json", headers={"if-none-match": first.headers["etag"]})
        head = await client.head("/openapi.json")
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/json"
    assert "max-age" in first.headers["cache-control"]
    assert first.json() == document(config)
    assert again.status_code == 304
    assert again.content == b""
    assert head.status_code == 200


# --- webhooks --------------------------------------------------------------------------------


def _webhook_body(name: str) -> str:
    return pointer("webhooks", name, "post", "requestBody", "content", "application/json", "schema")


def test_job_and_batch_webhook_bodies_match_their_schemas() -> None:
    """The envelope ``workers/control.py`` sends: ``{"type", "data"}`` with the ended job's or
    batch's API object."""
    job = JobRecord(
        id="job_1",
        tenant="acme",
        status=JobStatus.FAILED,
        priority=Priority.STANDARD,
        endpoint="/v1/chat/completions",
        model="gpt-4o-mini",
        pool="openai",
        created_ms=1_700_000_000_000,
        started_ms=1_700_000_000_100,
        finished_ms=1_700_000_000_900,
        attempts=2,
        result=None,
        error={"message": "upstream timed out", "type": "upstream_error", "code": "t"},
        usage=None,
        cost_usd=None,
        metadata={"ticket": "T-1"},
        deadline_ms=0,
    )
    sent = {"type": f"job.{job.status.value}", "data": job.to_api()}
    assert validator_at(DOC, _webhook_body("jobEnded")).is_valid(sent)
    batch = Batch(
        "batch_1",
        {
            "tenant": "acme",
            "endpoint": "/v1/embeddings",
            "input_file_id": "file-1",
            "completion_window": "24h",
            "status": "completed",
            "total": "2",
            "n_done": "2",
            "n_succeeded": "1",
            "created_at": "1700000000",
            "completed_at": "1700000100",
            "output_file_id": "file-2",
        },
    )
    errors = list(
        validator_at(DOC, _webhook_body("batchEnded")).iter_errors(
            {"type": "batch.completed", "data": batch.to_api()}
        )
    )
    assert not errors, [e.message for e in errors]
    refused = {"type": "job.started", "data": job.to_api()}
    assert not validator_at(DOC, _webhook_body("jobEnded")).is_valid(refused)


def test_the_budget_warning_webhook_body_matches_its_schema() -> None:
    crossing = Crossing(
        "acme", "day", "20261203", "usd", 80, 8.12, 10.0, datetime(2026, 12, 4, tzinfo=UTC)
    )
    sent = {"type": "budget.threshold_crossed", "data": crossing.to_api()}
    errors = list(validator_at(DOC, _webhook_body("budgetThresholdCrossed")).iter_errors(sent))
    assert not errors, [e.message for e in errors]
