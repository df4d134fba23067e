"""The key store contract, run against SQLite and PostgreSQL (see conftest)."""

from __future__ import annotations

import asyncio

import pytest

from helios.errors import KeyRejected, KeyStoreError
from helios.keys.model import ApiKey, KeyBudget, NewKey, digest, parse_budget
from tests.keys.conftest import Keys

NOW = 1_700_000_000.0


def acme(**fields: object) -> NewKey:
    return NewKey(**{"tenant": "acme", **fields})  # type: ignore[arg-type]


async def test_create_returns_the_key_once_and_stores_only_its_digest(keys: Keys) -> None:
    store = keys.open()
    key, plaintext = await store.create(acme(name="ci"), now=NOW)
    assert plaintext.startswith(f"hk-{key.id}-") and len(plaintext) == 59
    stored = await store.lookup(key.id)
    assert stored is not None
    assert stored.key == key and stored.digest == digest(plaintext)
    assert plaintext not in repr(stored) and plaintext not in repr(await store.list_keys())


async def test_every_field_round_trips(keys: Keys) -> None:
    store = keys.open()
    new = NewKey(
        tenant="acme",
        name="batch jobs",
        admin=True,
        budget=KeyBudget(0.00001, "usd", "90m", 5400.0),
        rpm=30,
        models=("sonnet", "gpt-mini"),
        expires_at=NOW + 86400,
    )
    key, _ = await store.create(new, now=NOW)
    expected = ApiKey(
        id=key.id,
        tenant="acme",
        created_at=NOW,
        name="batch jobs",
        admin=True,
        budget=KeyBudget(0.00001, "usd", "90m", 5400.0),
        rpm=30,
        models=("sonnet", "gpt-mini"),
        expires_at=NOW + 86400,
    )
    assert key == expected
    assert await keys.open().get(key.id) == expected  # another instance reads the same row
    bare, _ = await store.create(acme(), now=NOW)
    assert await store.get(bare.id) == ApiKey(id=bare.id, tenant="acme", created_at=NOW)


async def test_authenticate_accepts_the_key_and_nothing_like_it(keys: Keys) -> None:
    store = keys.open()
    key, plaintext = await store.create(acme(budget=parse_budget("20usd/5h")), now=NOW)
    assert await store.authenticate(plaintext, now=NOW) == key
    wrong_secret = plaintext[:-1] + ("a" if plaintext[-1] != "a" else "b")
    other_id = f"hk-{'0' * 12}-{plaintext.rsplit('-', 1)[1]}"
    cases = {
        wrong_secret: "unknown",
        other_id: "unknown",
        "": "malformed",
        "sk-not-ours": "malformed",
        plaintext + "x": "malformed",
        f"Bearer {plaintext}": "malformed",
    }
    for presented, reason in cases.items():
        with pytest.raises(KeyRejected) as info:
            await store.authenticate(presented, now=NOW)
        assert info.value.reason == reason
        assert plaintext not in str(info.value)


async def test_revoked_and_expired_keys_are_refused_by_name(keys: Keys) -> None:
    store = keys.open()
    revoked, revoked_key = await store.create(acme(), now=NOW)
    expiring, expiring_key = await store.create(acme(expires_at=NOW + 60), now=NOW)
    assert (await store.revoke(revoked.id, now=NOW + 1)) == ApiKey(
        id=revoked.id, tenant="acme", created_at=NOW, revoked_at=NOW + 1
    )
    again = await store.revoke(revoked.id, now=NOW + 99)  # a second revoke changes nothing
    assert again is not None and again.revoked_at == NOW + 1
    with pytest.raises(KeyRejected, match="revoked API key"):
        await store.authenticate(revoked_key, now=NOW + 2)
    assert await store.authenticate(expiring_key, now=NOW + 59) == expiring
    with pytest.raises(KeyRejected, match="expired API key"):
        await store.authenticate(expiring_key, now=NOW + 60)
    assert await store.revoke("0" * 12) is None


async def test_list_keeps_every_key_oldest_first(keys: Keys) -> None:
    store = keys.open()
    assert await store.list_keys() == [] and await store.any_keys() is False
    first, _ = await store.create(acme(), now=NOW)
    second, _ = await store.create(NewKey(tenant="globex", admin=True), now=NOW + 1)
    await store.revoke(first.id, now=NOW + 2)
    listed = await store.list_keys()
    assert [key.id for key in listed] == [first.id, second.id]
    assert listed[0].revoked_at == NOW + 2
    assert await store.any_keys() is True


async def test_keys_are_unique_under_concurrent_creation(keys: Keys) -> None:
    stores = [keys.open(), keys.open()]
    made = await asyncio.gather(*(stores[n % 2].create(acme()) for n in range(20)))
    assert len({key.id for key, _ in made}) == 20
    assert len({plaintext for _, plaintext in made}) == 20
    assert len(await stores[0].list_keys()) == 20


async def test_an_id_collision_is_retried(keys: Keys, monkeypatch: pytest.MonkeyPatch) -> None:
    store = keys.open()
    taken, _ = await store.create(acme())
    fresh = iter([(taken.id, f"hk-{taken.id}-{'x' * 43}"), ("b" * 12, f"hk-{'b' * 12}-{'y' * 43}")])
    monkeypatch.setattr("helios.keys.store.new_key", lambda: next(fresh))
    key, plaintext = await store.create(acme())
    assert key.id == "b" * 12 and plaintext.endswith("y" * 43)


async def test_a_closed_store_says_so(keys: Keys) -> None:
    store = keys.open()
    await store.create(acme())
    await store.aclose()
    with pytest.raises(KeyStoreError, match="closed"):
        await store.list_keys()
