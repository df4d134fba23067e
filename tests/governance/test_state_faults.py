"""A governor whose Redis refuses connections or hangs mid-load decides every call within
its deadline: refused by default (a budget is a safety control, so no call goes through
unchecked), let through unbudgeted with ``on_state_error: allow``. The circuit opens after
the configured failures, then no call touches the network, and budgets count again once
the path comes back, without a restart."""

from __future__ import annotations

import asyncio

import pytest

from helios.catalog import Catalog
from helios.config.breaker import BreakerSettings
from helios.config.governor import BudgetSettings, WindowSettings
from helios.config.settings import Settings
from helios.engine import Engine
from helios.errors import GovernorStateError
from helios.governance.governor import Governor
from helios.governance.state.redis import RedisState
from helios.ledger.events import GovernorDecision
from helios.ledger.sink import MemorySink
from helios.messages import Request
from helios.providers.function import FunctionProvider
from helios.providers.registry import ProviderRegistry
from helios.server.gateway.errors import from_helios
from tests.cache.tcp_proxy import FAULTS, NO_HANG_S, redis_proxy
from tests.governance.conftest import delete_prefix, redis_url

BREAKER = BreakerSettings(deadline_s=0.1, failures=3, cooldown_s=2.0)


@pytest.mark.parametrize("policy", ["reject", "allow"])
@pytest.mark.parametrize("fault", FAULTS)
async def test_governor_state_fault_mid_load(fault: str, policy: str) -> None:
    proxy, url = await redis_proxy(redis_url())
    prefix = f"helios:test:gov:{fault}:{policy}:{id(proxy)}"
    state = RedisState(url, prefix=prefix, breaker=BREAKER)
    catalog = Catalog.load()
    registry = ProviderRegistry(Settings(), catalog)
    provider = FunctionProvider(lambda r: "fine", name="f", model="m")
    registry.add(provider)
    sink = MemorySink()
    budget = BudgetSettings(
        account="team",
        unit="requests",
        windows=[WindowSettings(name="day", kind="sliding", length_s=86_400, limit=1000)],
    )
    governor = Governor(state, [budget], catalog, sink=sink, on_state_error=policy)  # type: ignore[arg-type]
    engine = Engine(registry, catalog, governor=governor)

    def ask() -> Request:
        return Request.of("hello", model="f:m")

    async def used() -> float:
        return (await governor.status())[0].used

    try:
        await engine.complete(ask())
        assert await used() == 1.0

        await proxy.fail(fault)
        async with asyncio.timeout(NO_HANG_S):
            for _ in range(8):
                if policy == "reject":
                    with pytest.raises(GovernorStateError, match="Redis governor state"):
                        await engine.complete(ask())
                else:
                    assert (await engine.complete(ask())).text == "fine"
        expected_calls = 1 if policy == "reject" else 9
        assert len(provider.calls) == expected_calls  # refused calls never reach a provider
        breaker = state.breaker
        assert breaker.state == "open" and breaker.opened == 1
        unavailable = [
            e
            for e in sink.events
            if isinstance(e, GovernorDecision) and e.details.get("state_unavailable")
        ]
        assert len(unavailable) == 8
        assert {e.decision for e in unavailable} == {policy}

        await proxy.restore(fault)
        before = (proxy.accepted, proxy.client_reads)
        for _ in range(3):
            if policy == "reject":
                with pytest.raises(GovernorStateError, match="circuit open") as refused:
                    await engine.complete(ask())
                gateway = from_helios(refused.value)
                assert gateway.status == 503 and "Retry-After" in gateway.headers
            else:
                await engine.complete(ask())
        assert (proxy.accepted, proxy.client_reads) == before  # the open circuit waits for nobody

        await asyncio.sleep(breaker.retry_after_s())
        async with asyncio.timeout(NO_HANG_S):
            await engine.complete(ask())  # the probe: budgets count again, no restart
        assert breaker.state == "closed"
        assert await used() == 2.0
    finally:
        proxy.resume()
        await engine.aclose()
        await governor.close()
        await proxy.stop()
        await delete_prefix(redis_url(), prefix)


def test_governor_settings_name_the_policy() -> None:
    settings = Settings.model_validate({"governor": {"on_state_error": "allow"}})
    assert settings.governor.on_state_error == "allow"
    assert Settings().governor.on_state_error == "reject"
    assert Settings().governor.redis_breaker.deadline_s == 1.0
    with pytest.raises(ValueError, match="on_state_error"):
        Settings.model_validate({"governor": {"on_state_error": "maybe"}})
