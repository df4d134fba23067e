"""What the OpenAPI schema says about refusals and the gateway's bodies.

Every route declares each 4xx (and 503) it can answer, with the body's shape: FastAPI's
``{"detail": ...}`` on Helios's own routes, OpenAI's ``{"error": {...}}`` and Anthropic's
``{"type": "error", ...}`` on the gateway's. The gateway routes read their bodies
themselves (to answer in their protocol's shape), so :func:`json_body` declares them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Responses = dict[int | str, dict[str, Any]]


class FieldProblem(BaseModel):
    """One thing wrong with a request, where FastAPI (and the cache API) say it is."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int]
    msg: str
    type: str


class ErrorDetail(BaseModel):
    """A refusal of Helios's own routes: a sentence, or the fields that are wrong."""

    detail: str | list[FieldProblem]


class OpenAIErrorObject(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIError(BaseModel):
    error: OpenAIErrorObject


class AnthropicErrorObject(BaseModel):
    type: str
    message: str


class AnthropicError(BaseModel):
    type: Literal["error"]
    error: AnthropicErrorObject


WHY = {
    400: "bad input: the body is not JSON, or (gateway) the message names the field",
    401: "no key, or a malformed, unknown, revoked or expired one",
    403: "the key may not do this (another tenant, an admin route, a model outside its list)",
    404: "no such thing",
    409: "the request contradicts the state: a finished task, an idempotency key reused",
    413: "the body, a text or a list is above its limit",
    421: "a server bound to loopback answers only Host headers naming this machine",
    422: "a field is missing, of the wrong type or out of range: the body names it",
    429: "a budget or rate limit (the body names the window; Retry-After)",
    502: "the provider failed",
    503: "unavailable: the key store, a cache store or the server itself (starting)",
    504: "the provider timed out",
}


def errors(
    *codes: int, shape: type[BaseModel] = ErrorDetail, why: Mapping[int, str] | None = None
) -> Responses:
    """``responses=`` for a route: each code with its body's shape and why it happens."""
    reasons = {**WHY, **(why or {})}
    declared: Responses = {code: {"model": shape, "description": reasons[code]} for code in codes}
    if 413 in declared and shape is ErrorDetail:  # the server's body limit answers in text
        declared[413]["content"] = {"text/plain": {"schema": {"type": "string"}}}
    return declared


OPERATOR_ERRORS = errors(401, 403, 503)
"""What operators read (``/metrics``): 401 without a key, 403 for a key not an admin's."""


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring ``model`` as a route's JSON body. Its nested models go to
    the schema's components under ``<Model>.<Nested>``: the protocols reuse names
    (``Tool``, ``FunctionCall``) for different shapes."""
    prefix = model.__name__ + "."
    schema = model.model_json_schema(ref_template=f"#/components/schemas/{prefix}{{model}}")
    definitions = {prefix + name: body for name, body in schema.pop("$defs", {}).items()}
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
        _SET_ASIDE: definitions,
    }


_SET_ASIDE = "x-helios-components"


def move_components(openapi: dict[str, Any]) -> dict[str, Any]:
    """Move what :func:`json_body` set aside into ``components.schemas``."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    for path in openapi.get("paths", {}).values():
        for operation in path.values():
            schemas.update(operation.pop(_SET_ASIDE, {}))
    return openapi
