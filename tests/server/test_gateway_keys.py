"""Keys, tenants and budgets on the gateway's own endpoints, through the official SDKs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import anthropic
import openai
import pytest

from helios.keys.model import parse_budget
from helios.ledger.sqlite import SQLiteLedgerStore
from helios.ledger.store import EventQuery
from helios.sim import SimServer
from tests.server.cache_fixtures import create_key
from tests.server.gateway_fixtures import Served, gateway_settings, serve

QUESTION = [{"role": "user", "content": "What is a vector index?"}]


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, str]:
    """Keys for two tenants, one limited to a model, one with a budget of one request per
    5 hours, one with an rpm of 1 (the key store is the gateway's ``tmp_path/keys.sqlite3``)."""

    async def make() -> dict[str, str]:
        path = tmp_path / "keys.sqlite3"
        made = {
            "acme": await create_key(path, "acme"),
            "globex": await create_key(path, "globex"),
            "sonnet_only": await create_key(path, "acme", models=("sonnet",)),
            "once": await create_key(path, "acme", budget=parse_budget("1requests/5h")),
            "slow": await create_key(path, "acme", rpm=1),
        }
        return {name: secret for name, (_, secret) in made.items()}

    return asyncio.run(make())


@pytest.fixture
def gateway(sim: SimServer, tmp_path: Path, keys: dict[str, str]) -> Iterator[Served]:
    with serve(gateway_settings(sim.base_url, tmp_path)) as served:
        yield served


def client(served: Served, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.url + "/v1", api_key=key, max_retries=0)


def test_a_call_without_a_valid_key_is_a_401_in_each_protocols_shape(gateway: Served) -> None:
    with client(gateway, "hk-nope-nope") as sdk, pytest.raises(openai.AuthenticationError) as no:
        sdk.chat.completions.create(model="sonnet", messages=QUESTION)
    assert no.value.body["type"] == "authentication_error"  # type: ignore[index]
    assert "hk-nope-nope" not in str(no.value)  # key material is never echoed
    sdk = anthropic.Anthropic(base_url=gateway.url, api_key="wrong", max_retries=0)
    with sdk, pytest.raises(anthropic.AuthenticationError) as refused:
        sdk.messages.create(model="sonnet", max_tokens=10, messages=QUESTION)
    assert refused.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]


def test_a_key_limited_to_some_models_may_use_only_those(
    gateway: Served, keys: dict[str, str]
) -> None:
    with client(gateway, keys["sonnet_only"]) as sdk:
        assert sdk.chat.completions.create(model="sonnet", messages=QUESTION).choices
        with pytest.raises(openai.PermissionDeniedError, match="may not use model 'opus'"):
            sdk.chat.completions.create(model="opus", messages=QUESTION)
        assert {model.id for model in sdk.models.list()} == {"claude-sonnet-5-5"}


def test_one_tenant_never_hits_anothers_cached_reply(gateway: Served, keys: dict[str, str]) -> None:
    def status(key: str) -> str:
        with client(gateway, key) as sdk:
            raw = sdk.chat.completions.with_raw_response.create(model="sonnet", messages=QUESTION)
        return str(raw.headers["cache-status"])

    assert status(keys["acme"]) == "helios; fwd=miss"
    assert status(keys["globex"]) == "helios; fwd=miss"
    assert status(keys["acme"]) == 'helios; hit; detail="L2"'


def test_a_spent_budget_is_a_429_naming_the_window_and_its_reset(
    gateway: Served, keys: dict[str, str], tmp_path: Path
) -> None:
    with client(gateway, keys["once"]) as sdk:
        first = sdk.chat.completions.with_raw_response.create(model="sonnet", messages=QUESTION)
        assert first.headers["x-helios-budget-remaining"] == "5h=0"  # the one request is spent
        with pytest.raises(openai.RateLimitError) as refused:
            sdk.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "1"}])
    message = str(refused.value)
    assert "budget" in message and "window '5h'" in message
    reset = message.split("room again at ")[1].split()[0].rstrip("',\"}")
    assert datetime.fromisoformat(reset).timestamp() > time.time()
    assert int(refused.value.response.headers["retry-after"]) >= 1
    with client(gateway, keys["slow"]) as sdk:  # rpm counts calls that reach a model
        sdk.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "a"}])
        with pytest.raises(openai.RateLimitError, match="1m"):
            sdk.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "2"}])

    async def recorded() -> list[str]:
        store = SQLiteLedgerStore(tmp_path / "ledger.sqlite3")
        try:
            deadline = time.monotonic() + 10
            while True:
                events = await store.query(
                    EventQuery(types=["governor_decision", "gateway_request"])
                )
                kinds = [
                    f"{e.type}:{getattr(e, 'decision', getattr(e, 'status', ''))}" for e in events
                ]
                if kinds.count("gateway_request:429") >= 2 or time.monotonic() > deadline:
                    return kinds
                await asyncio.sleep(0.05)
        finally:
            await store.aclose()

    kinds = asyncio.run(recorded())
    assert kinds.count("gateway_request:429") == 2 and "governor_decision:reject" in kinds
