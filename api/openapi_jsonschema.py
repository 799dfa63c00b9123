"""JSON Schema building blocks for ``/openapi.json``'s answer schemas (JSON Schema 2020-12,
the dialect of OpenAPI 3.1)."""

from __future__ import annotations

from typing import Any

from anygate.api.openapi_table import JSON


def nullable(schema: JSON) -> JSON:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: dict[str, JSON], *, optional: tuple[str, ...] = (), **extra: Any) -> JSON:
    """An object whose every property is required unless named in ``optional``."""
    required = [name for name in properties if name not in optional]
    return {"type": "object", "properties": properties, "required": required, **extra}


STR: JSON = {"type": "string"}
INT: JSON = {"type": "integer"}
NUM: JSON = {"type": "number"}
BOOL: JSON = {"type": "boolean"}
STR_MAP: JSON = {"type": "object", "additionalProperties": STR}


def const(value: str) -> JSON:
    return {"type": "string", "const": value}


def list_of(item: JSON, **extra_properties: JSON) -> JSON:
    """OpenAI's list shape (``api/paging.list_page``) holding ``item``s."""
    properties: dict[str, JSON] = {
        "object": const("list"),
        "data": {"type": "array", "items": item},
        "first_id": nullable(STR),
        "last_id": nullable(STR),
        "has_more": BOOL,
        **extra_properties,
    }
    return obj(properties)


def deleted(kind: str) -> JSON:
    return obj({"id": STR, "object": const(kind), "deleted": {"const": True}})
