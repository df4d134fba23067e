"""A JSON document made up from a JSON schema: the simulator's tool-call arguments and
structured (JSON-by-schema) replies.

Every property is filled in, required or not, with a plausible value of its type: a word
of the reply vocabulary for a string (or a fixed example for a known ``format``), an
integer or number within the schema's bounds (1..100 when it gives none), a boolean, an
enum's first value, a ``const``, nested objects and arrays (two items, or as many as
``minItems``/``maxItems`` allow). ``$ref`` into ``$defs``/``definitions`` is followed;
``anyOf``/``oneOf`` take their first option that is not ``null``; ``allOf`` merges its
parts. Gemini's OpenAPI-style schemas (``"type": "STRING"``) are read the same way.

Values are drawn from the RNG the caller passes (seeded by the prompt), so one prompt
always gives one document. Patterns, ``multipleOf`` and the like are not honoured: the
document is plausible, not a fuzzer's edge case.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

from helios.sim.text import VOCABULARY

MAX_DEPTH = 8
"""Below this depth a recursive schema gets only required properties and minimal arrays."""
_GIVE_UP_DEPTH = 32  # a schema that requires itself without end gets null here

_FORMATS: dict[str, str] = {
    "date": "2025-01-01",
    "date-time": "2025-01-01T12:00:00Z",
    "time": "12:00:00",
    "email": "sun@example.com",
    "uri": "https://example.com/sun",
    "url": "https://example.com/sun",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uuid": "00000000-0000-4000-8000-000000000000",
}
_DEFAULT_ITEMS = 2
_DEFAULT_SPAN = 99  # an unbounded integer or number falls within 1..100


def example(schema: Mapping[str, Any], rng: random.Random) -> Any:
    """A value that follows ``schema`` (``$ref`` s resolve against ``schema`` itself)."""
    return _Generator(schema, rng).value(schema, 0)


class _Generator:
    def __init__(self, root: Mapping[str, Any], rng: random.Random) -> None:
        self.root = root
        self.rng = rng

    def value(self, schema: object, depth: int) -> Any:
        if depth > _GIVE_UP_DEPTH or not isinstance(schema, Mapping):
            return None  # `true`/`false` schemas, and the end of an endless recursion
        if isinstance(schema.get("$ref"), str):
            return self.value(self._resolve(schema["$ref"]), depth + 1)
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, Sequence) and not isinstance(enum, str) and enum:
            return enum[0]
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, Sequence) and options:
                return self.value(_first_not_null(options), depth + 1)
        parts = schema.get("allOf")
        if isinstance(parts, Sequence) and parts:
            return self.value(self._merged(schema, parts), depth + 1)
        kind = _type(schema)
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, depth)
        if kind == "integer":
            return self._integer(schema)
        if kind == "number":
            return self._number(schema)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        return self._string(schema)

    def _resolve(self, ref: str) -> object:
        if not ref.startswith("#"):
            return {}  # remote references are not fetched: any value will do
        node: object = self.root
        for step in ref[1:].split("/")[1:]:
            step = step.replace("~1", "/").replace("~0", "~")
            node = node.get(step) if isinstance(node, Mapping) else None
        return node if node is not None else {}

    def _merged(self, schema: Mapping[str, Any], parts: Sequence[Any]) -> dict[str, Any]:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        properties: dict[str, Any] = dict(merged.get("properties") or {})
        required: list[str] = list(merged.get("required") or [])
        for part in parts:
            if isinstance(part, Mapping) and isinstance(part.get("$ref"), str):
                part = self._resolve(part["$ref"])
            if not isinstance(part, Mapping):
                continue
            properties.update(part.get("properties") or {})
            required.extend(part.get("required") or [])
            merged.update({k: v for k, v in part.items() if k not in ("properties", "required")})
        if properties:
            merged["properties"] = properties
        if required:
            merged["required"] = required
        return merged

    def _object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        required = [name for name in schema.get("required") or [] if isinstance(name, str)]
        names = list(properties) if depth < MAX_DEPTH else [n for n in properties if n in required]
        names += [name for name in required if name not in names]
        document = {name: self.value(properties.get(name, {}), depth + 1) for name in names}
        extra = schema.get("additionalProperties")
        if not properties and isinstance(extra, Mapping) and depth < MAX_DEPTH:
            document[self.rng.choice(VOCABULARY)] = self.value(extra, depth + 1)
        return document

    def _array(self, schema: Mapping[str, Any], depth: int) -> list[Any]:
        low = _count(schema.get("minItems")) or 0
        high = _count(schema.get("maxItems"))
        count = max(low, _DEFAULT_ITEMS if depth < MAX_DEPTH else 0)
        if high is not None:
            count = min(count, high)
        prefix = schema.get("prefixItems")
        prefix = list(prefix) if isinstance(prefix, Sequence) else []
        items = schema.get("items", {})
        values = [
            self.value(prefix[i] if i < len(prefix) else items, depth + 1) for i in range(count)
        ]
        if schema.get("uniqueItems"):
            unique: list[Any] = []
            for item in values:
                if item not in unique:
                    unique.append(item)
            values = unique
        return values

    def _integer(self, schema: Mapping[str, Any]) -> int:
        low, high = _bounds(schema)
        low_int, high_int = math.ceil(low), math.floor(high)
        if _number_or_none(schema.get("exclusiveMinimum")) == low_int:
            low_int += 1
        if _number_or_none(schema.get("exclusiveMaximum")) == high_int:
            high_int -= 1
        return self.rng.randint(low_int, max(low_int, high_int))

    def _number(self, schema: Mapping[str, Any]) -> float:
        low, high = _bounds(schema)
        value = round(self.rng.uniform(low, high), 2)
        return min(max(value, low), high)

    def _string(self, schema: Mapping[str, Any]) -> str:
        known = _FORMATS.get(str(schema.get("format", "")))
        if known is not None:
            return known
        minimum = _count(schema.get("minLength")) or 0
        maximum = _count(schema.get("maxLength"))
        words = [self.rng.choice(VOCABULARY)]
        while len(" ".join(words)) < minimum:
            words.append(self.rng.choice(VOCABULARY))
        text = " ".join(words)
        return text if maximum is None else text[:maximum]


def _type(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, Sequence) and not isinstance(kind, str):
        named = [str(k).lower() for k in kind if str(k).lower() != "null"]
        return named[0] if named else "null"
    if isinstance(kind, str):
        return kind.lower()
    if "properties" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return "string"


def _first_not_null(options: Sequence[Any]) -> object:
    for option in options:
        if not (isinstance(option, Mapping) and _type(option) == "null" and "type" in option):
            return option
    return options[0]


def _bounds(schema: Mapping[str, Any]) -> tuple[float, float]:
    low = _number_or_none(schema.get("minimum"))
    if low is None:
        low = _number_or_none(schema.get("exclusiveMinimum"))
    high = _number_or_none(schema.get("maximum"))
    if high is None:
        high = _number_or_none(schema.get("exclusiveMaximum"))
    if low is None and high is None:
        return 1.0, 1.0 + _DEFAULT_SPAN
    if low is None:
        assert high is not None
        return high - _DEFAULT_SPAN, high
    if high is None:
        return low, low + _DEFAULT_SPAN
    return low, max(low, high)


def _number_or_none(value: object) -> float | None:
    # Draft 4 writes exclusive bounds as booleans; those give no number of their own.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)  # Gemini's OpenAPI schemas may carry numbers as strings
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _count(value: object) -> int | None:
    number = _number_or_none(value)
    return None if number is None else max(int(number), 0)
