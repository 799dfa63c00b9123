"""Gemini's ``Schema`` (an OpenAPI 3.0 subset: upper-case types, ``nullable``) → JSON Schema.

google-genai turns Python functions and pydantic models into this form for ``parameters`` and
``responseSchema``; OpenAI wants JSON Schema. ``propertyOrdering`` becomes the order of
``properties``, which is the order OpenAI generates them in; ``defs``/``ref`` become
``$defs``/``$ref``.
"""

from __future__ import annotations

from typing import Any

from anygate.core.translate.common import Fields
from anygate.core.translate.errors import invalid, untranslatable

_TYPES = {
    "STRING": "string",
    "NUMBER": "number",
    "INTEGER": "integer",
    "BOOLEAN": "boolean",
    "ARRAY": "array",
    "OBJECT": "object",
    "NULL": "null",
}
_COPIED = frozenset(
    {
        "description",
        "enum",
        "format",
        "title",
        "pattern",
        "minimum",
        "maximum",
        "default",
        "required",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "minProperties",
        "maxProperties",
    }
)
_HANDLED = frozenset(
    {
        "type",
        "nullable",
        "properties",
        "propertyOrdering",
        "items",
        "anyOf",
        "additionalProperties",
        "defs",
        "ref",
        "example",
    }
)


def _type(node: Fields) -> str | None:
    raw = node.string("type")
    if raw is None or raw.upper() == "TYPE_UNSPECIFIED":
        return None
    json_type = _TYPES.get(raw.upper())
    if json_type is None:
        raise invalid(node.path("type"), f"unknown schema type {raw!r}")
    return json_type


def _properties(node: Fields) -> dict[str, Any] | None:
    raw = node.obj("properties")
    if raw is None:
        return None
    converted = {name: convert(raw.get(name), raw.path(name)) for name in raw.present()}
    order = node.array("propertyOrdering") or []
    ordered = {name: converted[name] for name in order if name in converted}
    ordered.update(converted)
    return ordered


def convert(value: Any, where: str) -> dict[str, Any]:
    node = Fields(value, where, gemini=True)
    node.reject_unknown(_COPIED | _HANDLED, "JSON Schema")
    out: dict[str, Any] = {}
    json_type = _type(node)
    if json_type is not None:
        out["type"] = [json_type, "null"] if node.boolean("nullable") else json_type
    for key in node.present():
        if key in _COPIED:
            out[key] = node.get(key)
    if out.get("format") == "enum":
        del out["format"]  # Gemini's marker for a string enum; ``enum`` itself says it all
    if "example" in node:
        out["examples"] = [node.get("example")]
    properties = _properties(node)
    if properties is not None:
        out["properties"] = properties
    if "items" in node:
        out["items"] = convert(node.get("items"), node.path("items"))
    any_of = node.array("anyOf")
    if any_of is not None:
        path = node.path("anyOf")
        out["anyOf"] = [convert(item, f"{path}[{i}]") for i, item in enumerate(any_of)]
        if node.boolean("nullable") and json_type is None:
            out["anyOf"].append({"type": "null"})
    _structure(node, out)
    return out


def _structure(node: Fields, out: dict[str, Any]) -> None:
    """The keywords that hold sub-schemas or references."""
    extra = node.get("additionalProperties")
    if isinstance(extra, bool):
        out["additionalProperties"] = extra
    elif extra is not None:
        out["additionalProperties"] = convert(extra, node.path("additionalProperties"))
    defs = node.obj("defs")
    if defs is not None:
        out["$defs"] = {name: convert(defs.get(name), defs.path(name)) for name in defs.present()}
    ref = node.string("ref")
    if ref is not None:
        if not ref.startswith("#/defs/"):
            raise untranslatable(node.path("ref"), "only references into defs are translated")
        out["$ref"] = "#/$defs/" + ref.removeprefix("#/defs/")
