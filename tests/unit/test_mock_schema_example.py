"""Example values built from JSON schemas and Gemini's OpenAPI schema subset."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from anygate.ops.mock_provider.schema_example import example_for_schema


class Address(BaseModel):
    street: str
    zip_code: int


class Person(BaseModel):
    name: str
    nickname: str | None
    addresses: list[Address]
    score: float
    active: bool


def test_pydantic_schema_with_refs_yields_a_valid_instance() -> None:
    value = example_for_schema(Person.model_json_schema())

    assert Person.model_validate(value).addresses[0].street == "mock"


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "string"}, "mock"),
        ({"type": "integer"}, 1),
        ({"type": "number"}, 1),
        ({"type": "boolean"}, True),
        ({"type": "null"}, None),
        ({"type": ["null", "integer"]}, 1),
        ({"enum": ["b", "a"]}, "b"),
        ({"const": 7}, 7),
        ({"type": "STRING"}, "mock"),
        ({"type": "string", "format": "date"}, "2024-01-01"),
        ({"type": "string", "minLength": 6}, "mockmo"),
        ({"type": "string", "maxLength": 2}, "mo"),
        ({"type": "integer", "minimum": 5}, 5),
        ({"type": "integer", "maximum": 0}, 0),
        ({"type": "integer", "exclusiveMinimum": 1}, 2),
        ({"type": "array", "items": {"type": "integer"}, "minItems": 2}, [1, 1]),
        ({"type": "array", "maxItems": 0}, []),
        ({"anyOf": [{"type": "null"}, {"type": "boolean"}]}, True),
    ],
)
def test_scalar_and_combinator_schemas(schema: dict[str, Any], expected: Any) -> None:
    assert example_for_schema(schema) == expected


def test_only_required_properties_are_filled_when_required_is_given() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
        "required": ["b"],
    }

    assert example_for_schema(schema) == {"b": "mock"}


def test_all_properties_are_filled_when_required_is_absent() -> None:
    schema = {"type": "OBJECT", "properties": {"a": {"type": "STRING"}, "b": {"type": "INTEGER"}}}

    assert example_for_schema(schema) == {"a": "mock", "b": 1}


def test_gemini_property_ordering_orders_keys() -> None:
    schema = {
        "type": "OBJECT",
        "properties": {"a": {"type": "STRING"}, "b": {"type": "STRING"}},
        "propertyOrdering": ["b", "a"],
    }

    assert list(example_for_schema(schema)) == ["b", "a"]


def test_gemini_int64_bounds_given_as_strings_are_honoured() -> None:
    assert example_for_schema({"type": "ARRAY", "items": {"type": "STRING"}, "minItems": "2"}) == [
        "mock",
        "mock",
    ]


def test_recursive_schema_terminates() -> None:
    schema = {
        "type": "object",
        "properties": {"child": {"$ref": "#"}},
        "required": ["child"],
    }

    value = example_for_schema(schema)

    assert isinstance(value, dict)
