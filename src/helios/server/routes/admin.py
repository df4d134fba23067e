"""``/api/v1/admin/keys``: API keys over HTTP, for admin keys only.

``POST`` creates a key and answers it (201) the one time it is ever shown; ``GET`` lists
every key (revoked and expired ones too) or shows one; ``DELETE /{id}`` revokes one (it
stays listed). Bodies speak the CLI's spellings (``"budget": "20usd/5h"``,
``"expires": "30d"``); a bad field is a 422 naming it. Paths name a key by its id, never
by the key itself (paths reach access logs). Without a key: 401; with a key that
is not an admin key: 403 (:data:`~helios.server.auth.AdminCaller`). A key created or
revoked here counts at once in this process, and within ``keys.cache_s`` in others.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from helios.errors import KeyStoreError
from helios.keys.directory import KeyDirectory
from helios.keys.model import (
    ApiKey,
    NewKey,
    check_models,
    check_tenant,
    describe,
    parse_budget,
    parse_duration,
)
from helios.server.auth import AdminCaller
from helios.server.limits import MAX_RPM
from helios.server.openapi import errors
from helios.server.state import ServerState

PREFIX = "/api/v1/admin/keys"


class CreateKeyBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    tenant: str = Field(description="letters, digits, '_', '.', '-'; at most 64")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    admin: bool = False
    budget: str | None = Field(default=None, description="e.g. 20usd/5h, 100000tokens/1d")
    rpm: int | None = Field(default=None, ge=1, le=MAX_RPM, description="requests per minute")
    models: list[str] | None = Field(default=None, description="model specs; null: any")
    expires: str | None = Field(default=None, description="lifetime, e.g. 30d, 12h")

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, value: str) -> str:
        return check_tenant(value)

    @field_validator("budget")
    @classmethod
    def _budget(cls, value: str | None) -> str | None:
        if value is not None:
            parse_budget(value)
        return value

    @field_validator("models")
    @classmethod
    def _models(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else list(check_models(value))

    @field_validator("expires")
    @classmethod
    def _expires(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    def new_key(self, now: float) -> NewKey:
        return NewKey(
            tenant=self.tenant,
            name=self.name,
            admin=self.admin,
            budget=None if self.budget is None else parse_budget(self.budget),
            rpm=self.rpm,
            models=None if self.models is None else tuple(self.models),
            expires_at=None if self.expires is None else now + parse_duration(self.expires),
        )


class KeyResult(BaseModel):
    id: str
    tenant: str
    name: str | None
    admin: bool
    budget: str | None
    rpm: int | None
    models: list[str] | None
    expires_at: str | None = Field(description="ISO 8601, UTC")
    created_at: str
    revoked_at: str | None
    status: str = Field(description="active, revoked or expired")


class CreatedKeyResult(KeyResult):
    key: str = Field(description="the key itself: shown this once, never again")


class KeyList(BaseModel):
    keys: list[KeyResult]


def router(state: ServerState) -> APIRouter:
    routes = APIRouter(prefix=PREFIX, tags=["admin"])

    def directory() -> KeyDirectory:
        if state.runtime is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the server is starting")
        return state.runtime.key_directory

    @routes.post(
        "",
        status_code=status.HTTP_201_CREATED,
        response_model=CreatedKeyResult,
        responses=errors(400, 401, 403, 422, 503),
        summary="Create a key; the answer holds the key itself, shown this once",
    )
    async def create(body: CreateKeyBody, caller: AdminCaller) -> dict[str, Any]:
        keys = directory()
        now = time.time()
        with _store_errors():
            key, plaintext = await keys.store.create(body.new_key(now), now=now)
        keys.forget(key.id)
        return {**describe(key, now), "key": plaintext}

    @routes.get(
        "",
        response_model=KeyList,
        responses=errors(401, 403, 503),
        summary="Every key (never a secret)",
    )
    async def list_keys(caller: AdminCaller) -> dict[str, Any]:
        with _store_errors():
            found = await directory().store.list_keys()
        now = time.time()
        return {"keys": [describe(key, now) for key in found]}

    @routes.get(
        "/{key_id}",
        response_model=KeyResult,
        responses=errors(401, 403, 404, 503),
        summary="One key (never its secret)",
    )
    async def show(key_id: str, caller: AdminCaller) -> dict[str, Any]:
        with _store_errors():
            key = await directory().store.get(key_id)
        return describe(_found(key), time.time())

    @routes.delete(
        "/{key_id}",
        response_model=KeyResult,
        responses=errors(401, 403, 404, 503),
        summary="Revoke a key (it stays listed)",
    )
    async def revoke(key_id: str, caller: AdminCaller) -> dict[str, Any]:
        keys = directory()
        with _store_errors():
            key = await keys.store.revoke(key_id)
        keys.forget(key_id)
        return describe(_found(key), time.time())

    return routes


def _found(key: ApiKey | None) -> ApiKey:
    if key is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such key")
    return key


@contextmanager
def _store_errors() -> Iterator[None]:
    """A store that cannot be reached is a 503 naming it (never a password or a key)."""
    try:
        yield
    except KeyStoreError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
