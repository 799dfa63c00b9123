"""Checking JSON against the schemas of ``/openapi.json``: a request body against its
operation's, a real answer against the one its operation documents for that status."""

from __future__ import annotations

from typing import Any

import httpx
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

DOC_URI = "urn:anygate:openapi"


def pointer(*parts: str) -> str:
    """A JSON pointer (RFC 6901) to ``parts``."""
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def validator_at(doc: dict[str, Any], at: str) -> Draft202012Validator:
    """A validator of the schema at pointer ``at`` in the document, its ``$ref``s resolved."""
    registry: Registry[Any] = Registry().with_resource(DOC_URI, DRAFT202012.create_resource(doc))
    return Draft202012Validator({"$ref": f"{DOC_URI}#{at}"}, registry=registry)


def _resolve(doc: dict[str, Any], node: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A Response Object behind a ``$ref``, and the pointer it sits at."""
    target = node["$ref"].removeprefix("#")
    found: Any = doc
    for part in target.strip("/").split("/"):
        found = found[part.replace("~1", "/").replace("~0", "~")]
    return found, target


def answer_problems(
    doc: dict[str, Any], method: str, template: str, response: httpx.Response
) -> list[str]:
    """Why ``response`` is not an answer ``method template`` documents: its status is not
    listed (nor ``default``), its media type is not, or its JSON breaks the schema."""
    op = doc["paths"][template][method.lower()]
    where = f"{method} {template} -> {response.status_code}"
    status = str(response.status_code)
    at = pointer("paths", template, method.lower(), "responses", status)
    spec = op["responses"].get(status)
    if spec is None:
        if response.status_code < 400:
            return [f"{where}: status not documented"]
        spec = op["responses"]["default"]
        at = pointer("paths", template, method.lower(), "responses", "default")
    if "$ref" in spec:
        spec, at = _resolve(doc, spec)
    problems = []
    if "x-request-id" not in response.headers:
        problems.append(f"{where}: no x-request-id")
    content = spec.get("content")
    if not content:
        return problems + (
            [f"{where}: a body where none is documented"] if response.content else []
        )
    media = response.headers.get("content-type", "").split(";")[0].strip()
    if media not in content:
        return [*problems, f"{where}: {media!r} is not among {sorted(content)}"]
    if media == "application/json":
        validator = validator_at(doc, at + pointer("content", media, "schema"))
        problems += [
            f"{where}: {e.json_path}: {e.message}" for e in validator.iter_errors(response.json())
        ]
    return problems
