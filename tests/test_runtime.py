"""The runtime: built once from settings, parts on first use, closed (and recorded) once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest

from helios.config.settings import Settings
from helios.ledger.events import Event, GovernorDecision
from helios.ledger.memory import MemoryLedgerStore
from helios.ledger.sink import MemorySink
from helios.ledger.sqlite import SQLiteLedgerStore
from helios.ledger.store import EventQuery
from helios.messages import Request
from helios.providers.function import FunctionProvider
from helios.runtime import LEDGER_WAIT_S, Runtime


class Warming(FunctionProvider):
    def __init__(self, name: str, model: str) -> None:
        super().__init__(lambda r: "ok", name=name, model=model)
        self.warmed = 0

    async def warm(self) -> None:
        self.warmed += 1


def settings(tmp_path: Path, **values: object) -> Settings:
    return Settings.model_validate(
        {
            "ledger": {"path": str(tmp_path / "ledger.sqlite3")},
            "cache": {"path": str(tmp_path / "cache.sqlite3"), "semantic": {"enabled": False}},
            **values,
        }
    )


async def test_parts_are_built_on_first_use(tmp_path: Path) -> None:
    async with Runtime.open(settings(tmp_path)) as runtime:
        assert runtime.store is not None and runtime.flags is not None
        built = set(vars(runtime))
        assert not {"engine", "cache", "router", "registry", "governor"} & built
        engine = runtime.engine
        assert engine.cache is runtime.cache and engine.router is runtime.router
        assert runtime.engine is engine  # once


async def test_every_call_is_recorded_and_durable_once_closed(tmp_path: Path) -> None:
    double = FunctionProvider(lambda r: "recorded", name="fake", model="m")
    sink = MemorySink()
    async with Runtime.open(settings(tmp_path), sink=sink, providers=[double]) as runtime:
        request = Request.of("hi", model="fake:m").with_context(task_id="t-1", persona="bard")
        await runtime.engine.complete(request)
    assert [e.type for e in sink.events] == ["cache_lookup", "persona_llm_run"]
    store = SQLiteLedgerStore(tmp_path / "ledger.sqlite3")
    try:
        stored = await store.query(EventQuery(task_ids=["t-1"]))
    finally:
        await store.aclose()
    assert [e.type for e in stored] == ["cache_lookup", "persona_llm_run"]


async def test_a_given_store_is_used_and_left_open(tmp_path: Path) -> None:
    store = MemoryLedgerStore()
    double = FunctionProvider(lambda r: "x", name="fake", model="m")
    async with Runtime.open(settings(tmp_path), store=store, providers=[double]) as runtime:
        await runtime.engine.complete(Request.of("hi", model="fake:m"))
    assert await store.count() == 2  # still open, and it holds the call's events


async def test_flag_overrides_in_the_ledger_apply_at_open(tmp_path: Path) -> None:
    store = MemoryLedgerStore()
    await store.set_flag_override("async_thesis", False, actor="test", reason="rollback")
    async with Runtime.open(settings(tmp_path), store=store) as runtime:
        assert runtime.settings.orchestration.async_thesis.enabled is False


async def test_without_a_ledger_nothing_is_opened_or_recorded(tmp_path: Path) -> None:
    double = FunctionProvider(lambda r: "x", name="fake", model="m")
    sink = MemorySink()
    config = settings(tmp_path, ledger={"enabled": False})
    async with Runtime.open(config, sink=sink, providers=[double]) as runtime:
        assert runtime.store is None and runtime.monitor is None
        await runtime.engine.complete(Request.of("hi", model="fake:m"))
    assert not (tmp_path / "ledger.sqlite3").exists()
    assert "persona_llm_run" in [e.type for e in sink.events]  # the caller's sink still hears


async def test_warm_builds_and_warms_what_can_run_and_skips_the_rest(tmp_path: Path) -> None:
    fast = Warming("anthropic", "claude-sonnet-5-5")
    config = settings(tmp_path, default_model="sonnet", tiers={"strong": "opus", "fast": "sonnet"})
    async with Runtime.open(config, providers=[fast]) as runtime:
        warmed = await runtime.warm()
    # opus has no key here: not ready, so not built; sonnet (default and fast) warmed once
    assert warmed == ["anthropic:claude-sonnet-5-5"] and fast.warmed == 1


async def test_the_governor_is_consulted_only_while_enabled(tmp_path: Path) -> None:
    budgets = [{"account": "a", "windows": [{"name": "5h", "kind": "session", "limit": 10}]}]
    state = str(tmp_path / "governor.sqlite3")
    off = settings(tmp_path, governor={"enabled": False, "path": state, "budgets": budgets})
    async with Runtime.open(off) as runtime:
        assert runtime.governor is not None and runtime.engine.governor is None
    on = settings(tmp_path, governor={"enabled": True, "path": state, "budgets": budgets})
    async with Runtime.open(on) as runtime:
        assert runtime.engine.governor is runtime.governor


async def test_warm_also_loads_the_semantic_caches_embedder(tmp_path: Path) -> None:
    config = settings(tmp_path, cache={"semantic": {"enabled": True}})
    async with Runtime.open(config) as runtime:
        warmed = await runtime.warm()
    assert any(item.startswith("embedder ") for item in warmed)


async def test_a_ledger_that_hangs_holds_a_flush_for_a_bounded_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A PostgreSQL ledger that neither answers nor fails: the flush at the end of a command
    gives up after ``LEDGER_WAIT_S`` with a warning instead of waiting as long as it hangs;
    the events stay queued and are written once the store answers again."""
    from helios.ledger.postgres import PostgresLedgerStore
    from tests.cache.tcp_proxy import postgres_proxy
    from tests.ledger.conftest import drop_schema, postgres_url

    url = postgres_url()
    schema = f"helios_test_{uuid.uuid4().hex[:12]}"
    proxy, proxied = await postgres_proxy(url)
    store = PostgresLedgerStore(proxied, schema=schema)
    try:
        async with Runtime.open(settings(tmp_path), store=store) as runtime:
            assert runtime.sink is not None and runtime.writer is not None
            runtime.sink.emit(GovernorDecision(task_id="t", decision="allow", account="a"))
            await runtime.flush()
            proxy.hang()
            runtime.sink.emit(GovernorDecision(task_id="t", decision="allow", account="b"))
            async with asyncio.timeout(LEDGER_WAIT_S * 10):  # generous: it returns, it waits
                await runtime.flush()
            assert runtime.writer.pending == 1
            assert "ledger did not answer" in caplog.text
            proxy.resume()
            await runtime.flush()
            assert runtime.writer.pending == 0
        assert await store.count() == 2
    finally:
        proxy.resume()
        await store.aclose()
        await proxy.stop()
        await drop_schema(url, schema)


class StallingStore(MemoryLedgerStore):
    """Appends wait until ``release`` is set: a store that neither answers nor fails."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.release.set()

    async def append(self, events: Sequence[Event]) -> None:
        await self.release.wait()
        await super().append(events)


async def test_an_answer_waits_for_its_events_but_not_for_a_stalled_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``commit_before_answer`` returns once the events are committed; a store that stalls
    holds one answer for ``ledger.commit_before_answer_s`` at most, and the answers after it
    not at all while its oldest queued event is older than that bound."""
    store = StallingStore()
    wait_s = 0.2
    values = {"ledger": {"flush_interval_s": 30, "commit_before_answer_s": wait_s}}
    async with Runtime.open(settings(tmp_path, **values), store=store) as runtime:
        assert runtime.sink is not None and runtime.writer is not None
        runtime.sink.emit(GovernorDecision(task_id="t", decision="allow", account="a"))
        await runtime.commit_before_answer()  # without it, 30 s of batching
        assert await store.count() == 1

        store.release.clear()
        runtime.sink.emit(GovernorDecision(task_id="t", decision="allow", account="b"))
        async with asyncio.timeout(wait_s * 20):  # generous: it returns, it waits
            await runtime.commit_before_answer()
        assert "ledger did not answer in 0.2 s" in caplog.text  # it waited, then gave up
        await asyncio.sleep(wait_s)  # the queued event is now older than the bound
        runtime.sink.emit(GovernorDecision(task_id="t", decision="allow", account="c"))
        async with asyncio.timeout(wait_s / 2):  # no wait at all now
            await runtime.commit_before_answer()
        assert runtime.writer.pending == 2

        store.release.set()
        await runtime.flush()
        assert await store.count() == 3
