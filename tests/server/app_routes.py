"""Every route an app serves, for the tests that must cover each one (a route added later
is covered without touching them)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts


@dataclass(frozen=True)
class Served:
    method: str
    path: str
    documented: bool
    """Part of the OpenAPI schema (``/docs`` and ``/openapi.json`` themselves are not)."""

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


def every_route(app: FastAPI) -> list[Served]:
    """One entry per method and path, included routers flattened (FastAPI keeps them nested)."""
    return [
        Served(method, context.path, bool(getattr(context, "include_in_schema", False)))
        for context in iter_route_contexts(app.routes)
        if context.path is not None
        for method in sorted(getattr(context, "methods", None) or ())
        if method != "HEAD"
    ]
