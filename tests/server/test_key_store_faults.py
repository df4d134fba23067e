"""The gateway over a PostgreSQL key store that refuses connections or hangs mid-load:
every call with a key is answered at once with a 503 and ``Retry-After`` (never let
through unchecked, never held; one without a key is still a 401), the store's circuit
opens after the configured failures and then no call touches the network, and calls are
authenticated again once the path comes back, without a restart."""

from __future__ import annotations

import asyncio
import uuid

import httpx2
import pytest

from helios.config.settings import Settings
from helios.keys.model import NewKey
from helios.keys.postgres import PostgresKeyStore
from helios.server import create_app
from tests.cache.tcp_proxy import FAULTS, NO_HANG_S, postgres_proxy
from tests.ledger.conftest import drop_schema, postgres_url
from tests.server.cache_fixtures import client_for


@pytest.mark.parametrize("fault", FAULTS)
async def test_an_unreachable_key_store_is_a_quick_503_then_recovers(fault: str) -> None:
    url = postgres_url()
    schema = f"helios_test_{uuid.uuid4().hex[:12]}"
    direct = PostgresKeyStore(url, schema=schema)
    _, secret = await direct.create(NewKey(tenant="acme"))
    await direct.aclose()
    proxy, proxied = await postgres_proxy(url)
    settings = Settings.model_validate(
        {
            "ledger": {"enabled": False},
            "cache": {"backend": "memory", "semantic": {"enabled": False}},
            "keys": {
                "backend": "postgres",
                "postgres_url": proxied,
                "postgres_schema": schema,
                "cache_s": 0,  # every call reads the store
                "postgres_breaker": {"deadline_s": 0.25, "failures": 3, "cooldown_s": 2.0},
            },
        }
    )
    app = create_app(settings)
    good = {"Authorization": f"Bearer {secret}"}
    try:
        async with client_for(app) as client:

            async def models(headers: dict[str, str]) -> httpx2.Response:
                return await client.get("/v1/models", headers=headers)

            assert (await models(good)).status_code == 200
            assert (await models({})).status_code == 401
            store = app.state.helios.auth.directory.store
            breaker = store.breaker

            await proxy.fail(fault)
            async with asyncio.timeout(NO_HANG_S):
                answers = [await models(headers) for headers in [good, {}] * 5]
            # a key cannot be checked: 503; no key at all needs no store: still 401
            assert [a.status_code for a in answers] == [503, 401] * 5
            for answer in answers[::2]:
                assert answer.json()["error"]["message"] == "the API key store is unavailable"
                assert int(answer.headers["retry-after"]) >= 1
            assert breaker.state == "open" and breaker.opened == 1

            await proxy.restore(fault)
            before = (proxy.accepted, proxy.client_reads)
            for _ in range(3):
                assert (await models(good)).status_code == 503
            assert (proxy.accepted, proxy.client_reads) == before

            await asyncio.sleep(breaker.retry_after_s())
            async with asyncio.timeout(NO_HANG_S):
                # the probe may meet a pooled connection the fault broke: the pool drops it
                while (answer := await models(good)).status_code != 200:
                    assert answer.status_code == 503
                    await asyncio.sleep(breaker.retry_after_s())
            assert breaker.state == "closed"
            assert (await models({})).status_code == 401
    finally:
        proxy.resume()
        await proxy.stop()
        await drop_schema(url, schema)
