"""Documents made up from JSON schemas: tool-call arguments and structured replies."""

from __future__ import annotations

import random
from enum import Enum
from typing import Any

from pydantic import BaseModel, Field

from helios.sim import VOCABULARY
from helios.sim.schema import example


class Colour(Enum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    street: str
    number: int = Field(ge=1, le=9)


class Person(BaseModel):
    name: str
    age: int | None = None
    height_m: float = Field(ge=1.5, le=2.0)
    colour: Colour
    home: Address
    others: list[Address] = Field(min_length=3)
    tags: dict[str, int] = {}
    active: bool = True


def made_up(schema: dict[str, Any], seed: int = 0) -> Any:
    return example(schema, random.Random(seed))


def test_a_pydantic_schema_gets_a_document_that_validates_with_every_field() -> None:
    document = made_up(Person.model_json_schema())
    person = Person.model_validate(document)
    assert set(document) == set(Person.model_fields)  # optional fields too
    assert person.colour is Colour.RED  # an enum's first value
    assert person.name in VOCABULARY and person.home.street in VOCABULARY
    assert 1 <= person.home.number <= 9 and 1.5 <= person.height_m <= 2.0
    assert len(person.others) == 3
    assert person.age is not None  # anyOf takes the option that is not null


def test_the_same_seed_gives_the_same_document() -> None:
    schema = Person.model_json_schema()
    assert made_up(schema, 1) == made_up(schema, 1)
    assert made_up(schema, 1) != made_up(schema, 2)


def test_plain_json_schema_keywords() -> None:
    schema = {
        "type": "object",
        "properties": {
            "kind": {"const": "point"},
            "when": {"type": "string", "format": "date-time"},
            "label": {"type": "string", "minLength": 10, "maxLength": 12},
            "count": {"type": "integer", "exclusiveMinimum": 4, "exclusiveMaximum": 6},
            "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "boolean"}]},
            "few": {"type": "array", "items": {"type": "number"}, "maxItems": 1},
            "either": {"type": ["null", "boolean"]},
            "merged": {
                "allOf": [
                    {"properties": {"a": {"type": "integer"}}},
                    {"properties": {"b": {"type": "string"}}, "required": ["b"]},
                ]
            },
        },
        "required": ["kind", "missing"],
    }
    document = made_up(schema)
    assert document["kind"] == "point"
    assert document["when"] == "2025-01-01T12:00:00Z"
    assert 10 <= len(document["label"]) <= 12
    assert document["count"] == 5
    assert isinstance(document["pair"][0], int) and isinstance(document["pair"][1], bool)
    assert len(document["few"]) == 1 and isinstance(document["few"][0], float)
    assert isinstance(document["either"], bool)
    assert set(document["merged"]) == {"a", "b"}
    assert isinstance(document["missing"], str)  # required but undeclared: a string


def test_gemini_openapi_schemas_are_read_alike() -> None:
    schema = {
        "type": "OBJECT",
        "properties": {
            "city": {"type": "STRING"},
            "days": {"type": "INTEGER", "minimum": "2", "maximum": "2"},
            "rain": {"type": "BOOLEAN", "nullable": True},
            "hours": {"type": "ARRAY", "items": {"type": "NUMBER"}},
        },
    }
    document = made_up(schema)
    assert document["city"] in VOCABULARY and document["days"] == 2
    assert isinstance(document["rain"], bool) and len(document["hours"]) == 2


def test_a_recursive_schema_ends() -> None:
    schema = {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "value": {"type": "integer"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
                "required": ["value"],
            }
        },
        "$ref": "#/$defs/node",
    }
    document = made_up(schema)
    depth = 0
    while document.get("children"):
        document, depth = document["children"][0], depth + 1
    assert 0 < depth < 10


def test_an_empty_schema_is_any_object_or_a_word() -> None:
    assert made_up({"type": "object"}) == {}
    assert made_up({}) in VOCABULARY
