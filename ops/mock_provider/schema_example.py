"""Smallest plausible instance of a JSON schema, for tool arguments and structured output.

Accepts both JSON Schema (OpenAI, Gemini `responseJsonSchema`/`parametersJsonSchema`) and the
OpenAPI subset Gemini uses in `responseSchema`/`parameters` (upper-case type names, `nullable`,
`propertyOrdering`). The goal is a value the provider's SDK and a pydantic model built from the
same schema will accept, not a random sample.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_MAX_DEPTH = 12
_STRING_FORMATS: dict[str, str] = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00",
    "email": "mock@example.com",
    "uri": "https://example.com/mock",
    "url": "https://example.com/mock",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "duration": "P1D",
}


def example_for_schema(schema: Mapping[str, Any]) -> Any:
    """Build a value satisfying the schema's required properties, types, enums and bounds."""
    return _Builder(schema).build(schema, 0)


class _Builder:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self._root = root

    def build(self, schema: Any, depth: int) -> Any:
        if not isinstance(schema, Mapping) or depth > _MAX_DEPTH:
            return None
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return enum[0]
        narrowed = self._narrowed(schema)
        if narrowed is not None:
            return self.build(narrowed, depth + 1)
        kind = _type_of(schema)
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, depth)
        if kind == "integer":
            return int(_number(schema, 1))
        if kind == "number":
            return _number(schema, 1)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return _string(schema)

    def _narrowed(self, schema: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The one schema a `$ref`, `anyOf`/`oneOf` or `allOf` stands for, if there is one."""
        ref = schema.get("$ref")
        if isinstance(ref, str):
            return self._resolve(ref)
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                first: Mapping[str, Any] = _first_non_null(options)
                return first
        parts = schema.get("allOf")
        if isinstance(parts, list) and parts:
            merged: dict[str, Any] = {}
            for part in parts:
                resolved = self._resolve(part["$ref"]) if "$ref" in part else part
                merged = _merge(merged, resolved)
            return merged
        return None

    def _object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties")
        if not isinstance(properties, Mapping):
            return {}
        required = schema.get("required")
        names = list(required) if isinstance(required, list) else list(properties)
        ordering = schema.get("propertyOrdering")
        if isinstance(ordering, list):
            names.sort(key=lambda name: ordering.index(name) if name in ordering else len(ordering))
        return {name: self.build(properties.get(name, {}), depth + 1) for name in names}

    def _array(self, schema: Mapping[str, Any], depth: int) -> list[Any]:
        prefix = schema.get("prefixItems")
        if isinstance(prefix, list):
            return [self.build(item, depth + 1) for item in prefix]
        if _as_int(schema.get("maxItems")) == 0:
            return []
        count = max(_as_int(schema.get("minItems")) or 0, 1)
        item = self.build(schema.get("items", {}), depth + 1)
        return [item] * count

    def _resolve(self, ref: str) -> Mapping[str, Any]:
        if ref == "#":
            return self._root
        if not ref.startswith("#/"):
            return {}
        node: Any = self._root
        for part in ref[2:].split("/"):
            key = part.replace("~1", "/").replace("~0", "~")
            node = node.get(key) if isinstance(node, Mapping) else None
        return node if isinstance(node, Mapping) else {}


def _first_non_null(options: list[Any]) -> Any:
    for option in options:
        if isinstance(option, Mapping) and _type_of(option) != "null":
            return option
    return options[0]


def _merge(left: Mapping[str, Any], right: Any) -> dict[str, Any]:
    merged = dict(left)
    if not isinstance(right, Mapping):
        return merged
    for key, value in right.items():
        if key == "properties" and isinstance(value, Mapping):
            merged["properties"] = {**merged.get("properties", {}), **value}
        elif key == "required" and isinstance(value, list):
            merged["required"] = [*merged.get("required", []), *value]
        else:
            merged[key] = value
    return merged


def _type_of(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        named = [str(item).lower() for item in kind]
        non_null = [item for item in named if item != "null"]
        return non_null[0] if non_null else "null"
    if isinstance(kind, str) and kind:
        lowered = kind.lower()
        return "string" if lowered == "type_unspecified" else lowered
    if "properties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return "string"


def _number(schema: Mapping[str, Any], preferred: int) -> int | float:
    value: int | float = preferred
    low = _as_number(schema.get("minimum"))
    high = _as_number(schema.get("maximum"))
    exclusive_low = _as_number(schema.get("exclusiveMinimum"))
    exclusive_high = _as_number(schema.get("exclusiveMaximum"))
    if low is not None and value < low:
        value = low
    if exclusive_low is not None and value <= exclusive_low:
        value = exclusive_low + 1
    if high is not None and value > high:
        value = high
    if exclusive_high is not None and value >= exclusive_high:
        value = exclusive_high - 1
    return value


def _as_number(value: Any) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _as_int(value: Any) -> int | None:
    """Counts arrive as JSON numbers, or as strings where Gemini's int64 fields are concerned."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _string(schema: Mapping[str, Any]) -> str:
    fmt = schema.get("format")
    text = _STRING_FORMATS.get(fmt, "mock") if isinstance(fmt, str) else "mock"
    min_length = _as_int(schema.get("minLength"))
    if min_length is not None and len(text) < min_length:
        text = (text * (min_length // len(text) + 1))[:min_length]
    max_length = _as_int(schema.get("maxLength"))
    if max_length is not None and len(text) > max_length:
        text = text[:max_length]
    return text
