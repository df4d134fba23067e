"""Key options as users write them, the key format, the directory's short memory, a key's
budgets as the governor sees them, and the store the settings name."""

from __future__ import annotations

from pathlib import Path

import pytest

from helios.config.keys import KeySettings
from helios.errors import ConfigError, KeyRejected, KeyStoreError
from helios.keys.budgets import KeyBudgets, key_budgets
from helios.keys.directory import KeyDirectory
from helios.keys.factory import open_key_store
from helios.keys.model import (
    ApiKey,
    KeyBudget,
    NewKey,
    check_models,
    check_tenant,
    key_id_of,
    new_key,
    parse_budget,
    parse_duration,
    parse_models,
)
from helios.keys.sqlite import SQLiteKeyStore
from helios.messages import CallContext


@pytest.mark.parametrize(
    ("text", "budget"),
    [
        ("20usd/5h", KeyBudget(20.0, "usd", "5h", 18000.0)),
        ("0.5usd/30m", KeyBudget(0.5, "usd", "30m", 1800.0)),
        ("100000tokens/1d", KeyBudget(100000.0, "tokens", "1d", 86400.0)),
        ("60requests/1m", KeyBudget(60.0, "requests", "1m", 60.0)),
    ],
)
def test_budgets_parse(text: str, budget: KeyBudget) -> None:
    assert parse_budget(text) == budget
    assert str(budget) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("20xyz/5h", "'20xyz/5h' is not a budget"),
        ("20usd", "is not a budget"),
        ("0usd/5h", "the amount must be above 0"),
        ("20usd/soon", "the window 'soon' is not a duration"),
        ("20usd/0h", "the window '0h' is not a duration"),
    ],
)
def test_bad_budgets_say_what_is_expected(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_budget(text)
    assert "e.g. 20usd/5h" in str(info.value) and "\n" not in str(info.value)


def test_durations_tenants_and_models() -> None:
    assert parse_duration("30d") == 30 * 86400 and parse_duration("90s") == 90
    assert parse_duration("2w") == 14 * 86400 and parse_duration("1.5h") == 5400
    for bad in ("soon", "30", "d", "-1d", "0s", "30 days"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)
    assert check_tenant("acme-eu.1") == "acme-eu.1"
    for bad in ("", "-acme", "a b", "acme:eu", "a/b", "x" * 65, "é"):
        with pytest.raises(ValueError, match="not a tenant name"):
            check_tenant(bad)
    assert parse_models("sonnet, gpt-mini,sonnet") == ("sonnet", "gpt-mini")
    for bad in ("", "a,,b", "a b"):
        with pytest.raises(ValueError, match="separated by commas"):
            parse_models(bad)
    with pytest.raises(ValueError):
        check_models([])


def test_keys_are_random_and_carry_their_id() -> None:
    made = [new_key() for _ in range(100)]
    assert len({plaintext for _, plaintext in made}) == 100
    for key_id, plaintext in made:
        assert key_id_of(plaintext) == key_id
    assert key_id_of("hk-abc-def") is None


async def test_the_directory_trusts_a_row_for_ttl_s(tmp_path: Path) -> None:
    store = SQLiteKeyStore(tmp_path / "keys.sqlite3")
    now = [0.0]
    directory = KeyDirectory(store, ttl_s=5.0, clock=lambda: now[0])
    assert await directory.any_keys() is False
    key, plaintext = await store.create(NewKey(tenant="acme"))
    assert await directory.any_keys() is False  # read 0 s ago
    now[0] = 5.0
    assert await directory.any_keys() is True
    assert await directory.authenticate(plaintext) == key
    await store.revoke(key.id)  # by another process, say
    assert await directory.authenticate(plaintext) == key  # still trusted
    now[0] = 10.0
    with pytest.raises(KeyRejected, match="revoked"):
        await directory.authenticate(plaintext)
    other, other_plaintext = await store.create(NewKey(tenant="acme"))
    assert await directory.get(other.id) == other
    await store.revoke(other.id)
    directory.forget(other.id)  # revoked through this process: at once
    with pytest.raises(KeyRejected, match="revoked"):
        await directory.authenticate(other_plaintext)
    assert await directory.get("not-an-id") is None
    await store.aclose()


async def test_a_keys_budget_and_rate_limit_become_governor_budgets(tmp_path: Path) -> None:
    key = ApiKey(
        id="0123456789ab",
        tenant="acme",
        created_at=0.0,
        budget=parse_budget("20usd/5h"),
        rpm=2,
        admin=True,
    )
    money, rate = key_budgets(key)
    assert (money.account, money.unit, money.on_exhausted) == ("key:0123456789ab", "usd", "reject")
    [window] = money.windows
    assert (window.name, window.kind, window.length_s, window.limit) == ("5h", "sliding", 18000, 20)
    assert money.high_priority_share == 0.0
    assert (rate.account, rate.unit) == ("key:0123456789ab:rpm", "requests")
    [window] = rate.windows
    assert (window.name, window.kind, window.length_s, window.limit) == ("1m", "sliding", 60, 2)
    assert key_budgets(ApiKey(id="0123456789ab", tenant="acme", created_at=0.0)) == []

    store = SQLiteKeyStore(tmp_path / "keys.sqlite3")
    stored, _ = await store.create(NewKey(tenant="acme", rpm=5))
    source = KeyBudgets(KeyDirectory(store))
    assert await source.budgets_for(CallContext()) == []
    assert await source.budgets_for(CallContext(key_id="ffffffffffff")) == []
    [budget] = await source.budgets_for(CallContext(key_id=stored.id))
    assert budget.account == f"key:{stored.id}:rpm"
    await store.aclose()


def test_the_settings_name_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELIOS_DATA_DIR", str(tmp_path))
    default = open_key_store(KeySettings())
    assert isinstance(default, SQLiteKeyStore) and default.path == tmp_path / "keys.sqlite3"
    with pytest.raises(ConfigError, match=r"keys\.postgres_url is required"):
        open_key_store(KeySettings(backend="postgres"))
    with pytest.raises(ConfigError, match="not a PostgreSQL URL"):
        open_key_store(KeySettings(backend="postgres", postgres_url="postgresql://a b c"))


async def test_an_unreachable_postgres_store_names_the_server_not_the_password() -> None:
    pytest.importorskip("psycopg")
    from helios.keys.postgres import PostgresKeyStore

    store = PostgresKeyStore("postgresql://u:hunter2@127.0.0.1:1/db", connect_timeout_s=1)
    with pytest.raises(KeyStoreError) as info:
        await store.any_keys()
    assert "127.0.0.1:1/db" in str(info.value) and "hunter2" not in str(info.value)
    await store.aclose()
