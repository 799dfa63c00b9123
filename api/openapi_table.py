"""The declarative shape of one operation in ``/openapi.json``, and how it is rendered.

Each surface's module (``openapi_native``, ``openapi_admin``, ``openapi_compat``) lists its
operations as ``Op`` rows; ``render`` turns a row into an OpenAPI 3.1 Operation Object. What
every operation of a kind shares (its security requirement, the errors its authentication can
answer, ``x-request-id`` both ways) is added here, once, so a row states only what is its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

JSON = dict[str, Any]

Auth = Literal["none", "admin", "inference", "jobs", "batches", "metrics"]
"""``none``: no key; ``admin``: an operator key; otherwise the tenant key's scope."""

Shape = Literal["openai", "google"]
"""The error body an operation answers: OpenAI's, or Google's on the Gemini surface."""

_PATH_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")

TENANT_SCHEMES = ("tenantBearer", "xApiKey", "googApiKey", "keyQuery", "anygateApiKey")
"""Every place a tenant key may travel (``api/auth.py``: ``native_credential``)."""
ADMIN_SCHEMES = ("adminBearer", "xApiKey", "keyQuery", "anygateApiKey")


def ref(kind: str, name: str) -> JSON:
    return {"$ref": f"#/components/{kind}/{name}"}


def schema_ref(name: str) -> JSON:
    return ref("schemas", name)


@dataclass(frozen=True)
class Body:
    """A request body: a schema (usually a ``$ref``) and one example the server accepts."""

    schema: JSON
    example: Any = None
    media: str = "application/json"
    description: str = ""


@dataclass(frozen=True)
class Answer:
    """A success answer; ``content`` maps media types to schemas when there is more than one
    (a call that streams or not)."""

    status: int
    description: str
    schema: JSON | None = None
    headers: tuple[str, ...] = ()
    media: str = "application/json"
    content: dict[str, JSON] | None = None


@dataclass(frozen=True)
class Op:
    method: str
    path: str
    op_id: str
    tag: str
    summary: str
    auth: Auth
    answers: tuple[Answer, ...]
    description: str = ""
    params: tuple[str, ...] = ()
    """Names of ``components/parameters`` (path parameters are added from the path:
    ``path.<name>``)."""
    body: Body | None = None
    errors: tuple[int, ...] = ()
    """Statuses this operation answers besides those of its authentication."""
    shape: Shape = "openai"
    docs: JSON | None = None
    """``externalDocs``: the upstream reference of a compatible call."""
    extra: JSON = field(default_factory=dict)


def security(auth: Auth, metrics_access: str = "admin") -> list[JSON]:
    if auth == "none" or (auth == "metrics" and metrics_access == "open"):
        return []
    if auth in {"admin", "metrics"}:
        return [{name: ["admin"]} for name in ADMIN_SCHEMES]
    return [{name: [auth]} for name in TENANT_SCHEMES]


def auth_errors(auth: Auth, metrics_access: str) -> tuple[int, ...]:
    """What authenticating alone can answer: a bad key (401), a missing scope or a disabled
    tenant (403), a key's own ``rpm`` spent (429, tenant keys), Redis away (503)."""
    if auth == "none" or (auth == "metrics" and metrics_access == "open"):
        return ()
    if auth in {"admin", "metrics"}:
        return (401, 403, 503)
    return (401, 403, 429, 503)


def error_response_name(status: int, shape: Shape) -> str:
    """``Error404``, ``GoogleError404``; status 0 is the ``default`` answer: ``ErrorOther``."""
    return f"{'Google' if shape == 'google' else ''}Error{status or 'Other'}"


def path_params(path: str) -> list[str]:
    return _PATH_PARAM.findall(path)


def render(op: Op, metrics_access: str = "admin") -> JSON:
    """The Operation Object of ``op``."""
    operation: JSON = {
        "operationId": op.op_id,
        "tags": [op.tag],
        "summary": op.summary,
    }
    if op.description:
        operation["description"] = op.description
    if op.docs:
        operation["externalDocs"] = op.docs
    operation["security"] = security(op.auth, metrics_access)
    named = (*(f"path.{p}" for p in path_params(op.path)), *op.params, "RequestIdIn")
    operation["parameters"] = [ref("parameters", p) for p in named]
    if op.body is not None:
        media: JSON = {"schema": op.body.schema}
        if op.body.example is not None:
            media["example"] = op.body.example
        operation["requestBody"] = {
            "required": True,
            "description": op.body.description or op.summary,
            "content": {op.body.media: media},
        }
    responses: JSON = {}
    for answer in op.answers:
        responses[str(answer.status)] = _answer(answer)
    for status in sorted({*auth_errors(op.auth, metrics_access), *op.errors}):
        responses[str(status)] = ref("responses", error_response_name(status, op.shape))
    responses["default"] = ref("responses", error_response_name(0, op.shape))
    operation["responses"] = responses
    operation.update(op.extra)
    return operation


def _answer(answer: Answer) -> JSON:
    rendered: JSON = {"description": answer.description}
    headers = {"x-request-id": ref("headers", "RequestId")}
    headers |= {name: ref("headers", HEADER_COMPONENTS[name]) for name in answer.headers}
    rendered["headers"] = headers
    if answer.content is not None:
        rendered["content"] = {media: {"schema": s} for media, s in answer.content.items()}
    elif answer.schema is not None:
        rendered["content"] = {answer.media: {"schema": answer.schema}}
    return rendered


HEADER_COMPONENTS = {
    "x-anygate-job-id": "JobId",
    "location": "Location",
    "idempotent-replayed": "IdempotentReplayed",
    "x-anygate-cache": "CacheVerdict",
    "x-should-retry": "ShouldRetry",
    "x-accel-buffering": "AccelBuffering",
    "cache-control": "CacheControl",
    "content-disposition": "ContentDisposition",
    "content-length": "ContentLength",
    "etag": "ETag",
    "retry-after": "RetryAfter",
}
"""Response header name to its ``components/headers`` entry."""


def paths(ops: list[Op], metrics_access: str = "admin") -> JSON:
    """The Paths Object; two rows for one method and path are a bug in a table."""
    out: dict[str, JSON] = {}
    for op in ops:
        item = out.setdefault(op.path, {})
        method = op.method.lower()
        if method in item:
            raise ValueError(f"two operations for {op.method} {op.path}")
        item[method] = render(op, metrics_access)
    return out
