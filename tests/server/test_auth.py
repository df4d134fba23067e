"""Authentication on every route of ``helios serve``: keys, tenants, the rule without keys,
and the cache API scoped to the caller's tenant (exact and semantic)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from helios.cache.manager import CacheManager
from helios.config.settings import Settings
from helios.errors import ConfigError
from helios.keys.sqlite import SQLiteKeyStore
from helios.ledger.memory import MemoryLedgerStore
from helios.server import create_app
from helios.server.auth import Caller, exposure, is_loopback
from helios.server.routes.cache import PREFIX
from tests.server.cache_fixtures import build_manager, client_for, create_key

QUESTION = "How do I reset my password?"
PARAPHRASE = "How can I reset my password?"
ANSWER = "Open Settings, choose Security, then Reset password."


def settings(keys: Path, **values: object) -> Settings:
    return Settings.model_validate(
        {
            "ledger": {"enabled": False},
            "cache": {"backend": "memory", "semantic": {"enabled": False}},
            "keys": {"path": str(keys)},
            **values,
        }
    )


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    return tmp_path / "keys.sqlite3"


async def lookup(client: httpx2.AsyncClient, key: str | None, **body: Any) -> httpx2.Response:
    return await client.post(
        f"{PREFIX}/lookup", json={"input_text": QUESTION, **body}, headers=bearer(key)
    )


async def store(client: httpx2.AsyncClient, key: str | None, **body: Any) -> httpx2.Response:
    fields = {"input_text": QUESTION, "response_data": ANSWER, **body}
    return await client.post(f"{PREFIX}/store", json=fields, headers=bearer(key))


def bearer(key: str | None) -> dict[str, str]:
    return {} if key is None else {"Authorization": f"Bearer {key}"}


# -- who may call -----------------------------------------------------------------------------
async def test_without_keys_a_loopback_server_serves_everyone_as_the_default_tenant(
    keys: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="helios.server")
    async with client_for(create_app(settings(keys))) as client:
        stored = await store(client, None)
        sdk_key = await lookup(client, "sk-whatever-the-sdk-insists-on")  # ignored
        named = await lookup(client, None, tenant="acme")
        admin = await client.get("/api/v1/admin/keys")
    assert stored.status_code == 200 and stored.json()["key"].startswith("l2:default:")
    assert sdk_key.status_code == 200 and sdk_key.json()["hit"] is True
    assert named.status_code == 403
    assert named.json()["detail"] == (
        "calls without a key act for tenant 'default': only an admin key may name another tenant"
    )
    assert admin.status_code == 401 and "helios keys create" in admin.json()["detail"]
    assert "no API keys: serving unauthenticated calls as tenant 'default'" in caplog.text


async def test_without_keys_any_other_address_is_refused(keys: Path) -> None:
    app = create_app(settings(keys), host="0.0.0.0")
    with pytest.raises(ConfigError, match=r"^refusing to serve on 0\.0\.0\.0 without API keys"):
        async with client_for(app):
            pass


def test_the_exposure_rule() -> None:
    assert exposure("127.0.0.1", has_keys=True) is None
    notice = exposure("::1", has_keys=False)
    assert notice is not None and "\n" not in notice and not notice.startswith("warning")
    for host in ("0.0.0.0", "::", "192.0.2.7", "example.invalid"):
        with pytest.raises(ConfigError) as info:
            exposure(host, has_keys=False)
        assert "\n" not in str(info.value)
        for warning in (
            exposure(host, has_keys=True),
            exposure(host, has_keys=False, allow_unauthenticated=True),
        ):
            assert warning is not None and warning.startswith(f"warning: serving on {host}")
            assert "\n" not in warning
    assert is_loopback("localhost") and is_loopback("127.0.0.2") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("no-such-host.invalid")


async def test_with_keys_every_call_needs_a_valid_one(keys: Path) -> None:
    _, good = await create_key(keys)
    revoked, revoked_key = await create_key(keys)
    _, expired_key = await create_key(keys, expires_at=time.time() - 1)
    key_store = SQLiteKeyStore(keys)
    await key_store.revoke(revoked.id)
    await key_store.aclose()
    wrong = good[:-1] + ("a" if good[-1] != "a" else "b")
    async with client_for(create_app(settings(keys))) as client:
        answers = {
            "none": await lookup(client, None),
            "wrong": await lookup(client, wrong),
            "malformed": await lookup(client, "sk-not-a-helios-key"),
            "revoked": await lookup(client, revoked_key),
            "expired": await lookup(client, expired_key),
            "basic": await client.post(
                f"{PREFIX}/lookup",
                json={"input_text": QUESTION},
                headers={"Authorization": "Basic dXNlcjpwYXNz"},
            ),
        }
        bearer_ok = await lookup(client, good)
        x_api_key_ok = await client.post(
            f"{PREFIX}/lookup", json={"input_text": QUESTION}, headers={"x-api-key": good}
        )
        other_routes = [
            await client.get(f"{PREFIX}/metrics"),
            await client.get(f"{PREFIX}/summary"),
            await client.get(f"{PREFIX}/health"),
            await client.get(f"{PREFIX}/stats/layer/L2"),
            await client.post(f"{PREFIX}/invalidate", json={}),
            await client.post(f"{PREFIX}/store", json={"input_text": "q", "response_data": "a"}),
        ]
        open_routes = [await client.get("/health")]
    reasons = {name: (r.status_code, r.json()["detail"]) for name, r in answers.items()}
    assert reasons == {
        "none": (401, "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"),
        "wrong": (401, "unknown API key"),
        "malformed": (401, "malformed API key"),
        "revoked": (401, "revoked API key"),
        "expired": (401, "expired API key"),
        "basic": (401, "malformed API key"),
    }
    assert all(r.headers["www-authenticate"].startswith("Bearer") for r in answers.values())
    assert bearer_ok.status_code == 200 and x_api_key_ok.status_code == 200
    assert [r.status_code for r in other_routes] == [401] * len(other_routes)
    assert [r.status_code for r in open_routes] == [200]
    for response in [*answers.values(), *other_routes]:
        for secret in (good, revoked_key, expired_key, wrong):
            assert secret not in response.text


async def test_a_key_store_that_cannot_be_read_refuses_every_call(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("", encoding="utf-8")
    broken = tmp_path / "not-a-dir" / "keys.sqlite3"
    async with client_for(create_app(settings(broken))) as client:
        answer = await lookup(client, None)
        health = await client.get("/health")
    assert answer.status_code == 503
    assert answer.json()["detail"] == "the API key store is unavailable"
    assert health.status_code == 200


def test_a_caller_builds_the_call_context() -> None:
    caller = Caller(key_id="0123456789ab", tenant="acme", models=("sonnet",))
    context = caller.context(task_id="t-1", priority="high")
    assert (context.tenant, context.key_id, context.task_id, context.priority) == (
        "acme",
        "0123456789ab",
        "t-1",
        "high",
    )
    assert caller.allows_model("sonnet") and not caller.allows_model("opus")
    assert Caller(key_id=None, tenant="default").allows_model("opus")
    assert caller.tenant_for(None) == "acme" and caller.tenant_for("acme") == "acme"
    assert Caller(key_id="x", tenant="ops", admin=True).tenant_for("acme") == "acme"


# -- one tenant never reads, hits or invalidates another's entries ---------------------------
@pytest.fixture
def manager(tmp_path: Path) -> CacheManager:
    return build_manager(tmp_path)  # L2 and L3 (the local embedder and verifier)


@pytest.fixture
async def tenants(
    keys: Path, manager: CacheManager
) -> AsyncIterator[tuple[httpx2.AsyncClient, dict[str, str]]]:
    made = {
        "acme": (await create_key(keys, "acme"))[1],
        "globex": (await create_key(keys, "globex"))[1],
        "admin": (await create_key(keys, "ops", admin=True))[1],
    }
    async with client_for(create_app(settings(keys), cache=manager)) as client:
        yield client, made
    await manager.aclose()


async def test_a_tenants_entries_never_answer_another_tenant(
    tenants: tuple[httpx2.AsyncClient, dict[str, str]],
) -> None:
    client, key = tenants
    stored = (await store(client, key["acme"])).json()
    assert stored["key"].startswith("l2:acme:")
    own_exact = (await lookup(client, key["acme"])).json()
    own_semantic = (await lookup(client, key["acme"], input_text=PARAPHRASE)).json()
    other_exact = (await lookup(client, key["globex"])).json()
    other_semantic = (await lookup(client, key["globex"], input_text=PARAPHRASE)).json()
    naming = await lookup(client, key["globex"], tenant="acme")
    admin_naming = (await lookup(client, key["admin"], tenant="acme")).json()
    admin_own = (await lookup(client, key["admin"])).json()

    assert (own_exact["layer"], own_semantic["layer"]) == ("L2_REDIS_EXACT", "L3_SEMANTIC")
    assert other_exact["hit"] is False and other_semantic["hit"] is False
    assert naming.status_code == 403
    assert "tenant 'globex': only an admin key" in naming.json()["detail"]
    assert admin_naming["layer"] == "L2_REDIS_EXACT"  # an admin key may act for any tenant
    assert admin_own["hit"] is False  # and acts for its own ('ops') unless it names one


async def test_a_tenant_invalidates_and_lists_only_its_own_entries(
    tenants: tuple[httpx2.AsyncClient, dict[str, str]],
) -> None:
    client, key = tenants
    acme_key = (await store(client, key["acme"])).json()["key"]
    globex_key = (await store(client, key["globex"])).json()["key"]

    def invalidate(who: str, **body: Any) -> Any:
        return client.post(f"{PREFIX}/invalidate", json=body, headers=bearer(key[who]))

    someone_elses = await invalidate("globex", key=acme_key)
    naming = await invalidate("globex", tenant="acme")
    shared = await invalidate("globex", layer="L1")
    everything_of_globex = await invalidate("globex")
    listed = await client.get(
        f"{PREFIX}/stats/layer/L2", params={"limit": 10}, headers=bearer(key["acme"])
    )
    listing_another = await client.get(
        f"{PREFIX}/stats/layer/L2", params={"tenant": "globex"}, headers=bearer(key["acme"])
    )

    assert [r.status_code for r in (someone_elses, naming, shared)] == [403, 403, 403]
    assert everything_of_globex.json() == {
        "removed": {"L2_REDIS_EXACT": 1, "L3_SEMANTIC": 1},
        "total": 2,
    }
    assert (await lookup(client, key["acme"])).json()["layer"] == "L2_REDIS_EXACT"
    assert (await lookup(client, key["globex"])).json()["hit"] is False
    assert [entry["key"] for entry in listed.json()["recent_entries"]] == [acme_key]
    assert globex_key not in listed.text
    assert listing_another.status_code == 403
    own = await invalidate("acme", key=acme_key)
    assert own.json()["removed"] == {"L2_REDIS_EXACT": 1}


# -- key material never leaks -----------------------------------------------------------------
async def test_keys_never_reach_logs_metrics_or_errors(
    keys: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _, good = await create_key(keys, admin=True)
    revoked_record, revoked = await create_key(keys)
    app = create_app(settings(keys), store=MemoryLedgerStore())
    async with client_for(app) as client:
        await store(client, good)
        await lookup(client, good)
        await lookup(client, good[:-2] + "xy")
        await client.delete(f"/api/v1/admin/keys/{revoked_record.id}", headers=bearer(good))
        refused = await lookup(client, revoked)
        created = await client.post(
            "/api/v1/admin/keys", json={"tenant": "acme"}, headers=bearer(good)
        )
        await lookup(client, created.json()["key"])
        metrics = await client.get("/metrics", headers=bearer(good))
        health = await client.get("/health", headers=bearer(good))
    assert refused.status_code == 401
    assert metrics.status_code == 200 and "ledger" in health.json()
    for secret in (good, revoked, created.json()["key"]):
        for text in (metrics.text, health.text, caplog.text, refused.text):
            assert secret not in text
        assert secret.rsplit("-", 1)[1] not in caplog.text
