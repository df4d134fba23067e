"""``/api/v1/admin/keys``: keys over HTTP, for admin keys only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helios.config.settings import Settings
from helios.server import create_app
from helios.server.routes.admin import PREFIX
from tests.server.cache_fixtures import client_for, create_key


def settings(keys: Path) -> Settings:
    return Settings.model_validate(
        {
            "ledger": {"enabled": False},
            "cache": {"backend": "memory", "semantic": {"enabled": False}},
            "keys": {"path": str(keys)},
        }
    )


def bearer(key: str | None) -> dict[str, str]:
    return {} if key is None else {"Authorization": f"Bearer {key}"}


async def test_only_an_admin_key_may_use_the_admin_api(tmp_path: Path) -> None:
    keys = tmp_path / "keys.sqlite3"
    _, admin = await create_key(keys, "ops", admin=True)
    _, tenant = await create_key(keys, "acme")
    async with client_for(create_app(settings(keys))) as client:
        answers = {
            who: [
                await client.get(PREFIX, headers=bearer(key)),
                await client.post(PREFIX, json={"tenant": "acme"}, headers=bearer(key)),
                await client.delete(f"{PREFIX}/0123456789ab", headers=bearer(key)),
            ]
            for who, key in (("nobody", None), ("tenant", tenant), ("admin", admin))
        }
    codes = {who: [r.status_code for r in responses] for who, responses in answers.items()}
    assert codes == {"nobody": [401, 401, 401], "tenant": [403, 403, 403], "admin": [200, 201, 404]}
    assert answers["tenant"][0].json()["detail"] == "this key is not an admin key"


async def test_create_shows_the_key_once_and_it_works_at_once(tmp_path: Path) -> None:
    keys = tmp_path / "keys.sqlite3"
    _, admin = await create_key(keys, "ops", admin=True)
    body = {
        "tenant": "acme",
        "name": "ci",
        "budget": "20usd/5h",
        "rpm": 60,
        "models": ["sonnet", "gpt-mini"],
        "expires": "30d",
    }
    async with client_for(create_app(settings(keys)), admin) as client:
        created = await client.post(PREFIX, json=body)
        made = created.json()
        works = await client.post(
            "/api/v1/helios/cache/lookup", json={"input_text": "hi"}, headers=bearer(made["key"])
        )
        listed = await client.get(PREFIX)
        shown = await client.get(f"{PREFIX}/{made['id']}")
        revoked = await client.delete(f"{PREFIX}/{made['id']}")
        refused = await client.post(
            "/api/v1/helios/cache/lookup", json={"input_text": "hi"}, headers=bearer(made["key"])
        )
        again = await client.delete(f"{PREFIX}/{made['id']}")
        missing = await client.get(f"{PREFIX}/ffffffffffff")
    assert created.status_code == 201
    assert made["key"].startswith(f"hk-{made['id']}-")
    assert {k: made[k] for k in ("tenant", "name", "admin", "budget", "rpm", "models")} == {
        "tenant": "acme",
        "name": "ci",
        "admin": False,
        "budget": "20usd/5h",
        "rpm": 60,
        "models": ["sonnet", "gpt-mini"],
    }
    assert made["status"] == "active" and made["expires_at"] > made["created_at"]
    assert works.status_code == 200
    assert made["key"] not in listed.text and made["key"] not in shown.text
    assert [key["tenant"] for key in listed.json()["keys"]] == ["ops", "acme"]
    assert "key" not in shown.json() and shown.json()["id"] == made["id"]
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert refused.status_code == 401 and refused.json()["detail"] == "revoked API key"
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    assert missing.status_code == 404 and missing.json()["detail"] == "no such key"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "tenant", "Field required"),
        ({"tenant": "a b"}, "tenant", "is not a tenant name"),
        ({"tenant": "acme", "budget": "20xyz/5h"}, "budget", "is not a budget"),
        ({"tenant": "acme", "expires": "soon"}, "expires", "is not a duration"),
        ({"tenant": "acme", "rpm": 0}, "rpm", "greater than or equal to 1"),
        ({"tenant": "acme", "models": ["a", ""]}, "models", "separated by commas"),
        ({"tenant": "acme", "admin": "maybe"}, "admin", "valid boolean"),
        ({"tenant": "acme", "secret": "x"}, "secret", "Extra inputs"),
    ],
)
async def test_bad_bodies_are_422s_naming_the_field(
    tmp_path: Path, body: dict[str, Any], field: str, message: str
) -> None:
    keys = tmp_path / "keys.sqlite3"
    _, admin = await create_key(keys, "ops", admin=True)
    async with client_for(create_app(settings(keys)), admin) as client:
        response = await client.post(PREFIX, json=body)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", field]
    assert message in error["msg"]


async def test_the_admin_routes_are_documented(tmp_path: Path) -> None:
    async with client_for(create_app(settings(tmp_path / "keys.sqlite3"))) as client:
        document = (await client.get("/openapi.json")).json()
    assert {path for path in document["paths"] if path.startswith(PREFIX)} == {
        PREFIX,
        f"{PREFIX}/{{key_id}}",
    }
