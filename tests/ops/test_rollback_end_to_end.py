"""The ledger's promise end to end: thesis failures above 10% make the monitor roll
``async_thesis`` back, a running pipeline picks the override up within one poll interval,
later tasks run sequentially, and the flag_changed event says why."""

from pathlib import Path

from helios.config.ops import MonitorSettings
from helios.errors import ProviderUnavailable
from helios.ledger.events import AsyncFallback, FlagChanged, TaskStarted
from helios.ledger.sqlite import SQLiteLedgerStore
from helios.ledger.store import EventQuery
from helios.ledger.writer import LedgerWriter
from helios.messages import Request
from helios.ops.flags import FlagRegistry
from helios.ops.monitor import HealthMonitor
from helios.pipeline.dialectic import DialecticPipeline
from tests.pipeline.helpers import Personas, ScriptedGatherer, make_world, pipeline_settings

GOAL = "Should a five-person startup adopt microservices?"
POLL_S = 10.0


async def test_monitor_rolls_async_thesis_back_and_the_pipeline_follows(tmp_path: Path) -> None:
    store = SQLiteLedgerStore(tmp_path / "ledger.sqlite3")
    writer = LedgerWriter(store, flush_interval_s=0.01)
    calls = {"n": 0}

    def thesis(request: Request) -> str:
        calls["n"] += 1
        if "[E1]" not in (request.system or "") and calls["n"] % 3 == 0:
            # a third of the concurrent (async) theses fail: far above the 10% limit
            raise ProviderUnavailable("overloaded", provider="fake", model="model")
        return "A thesis."

    world = make_world(Personas(thesis=thesis), gatherer=ScriptedGatherer(), cache=False)
    settings = pipeline_settings()
    now = [1000.0]
    registry = FlagRegistry(store, settings, poll_interval_s=POLL_S, clock=lambda: now[0])
    pipeline = DialecticPipeline(
        world.engine, settings, world.gatherer, sink=writer, settings_source=registry
    )
    try:
        for _ in range(30):
            await pipeline.run(GOAL)
            await writer.flush()  # a task's events are durable before it counts as done
        fallbacks = await store.query(EventQuery(types=["async_fallback"]))
        assert len(fallbacks) / 30 > 0.10
        assert all(isinstance(f, AsyncFallback) for f in fallbacks)

        monitor = HealthMonitor(store, MonitorSettings(), alerter=None)
        report = await monitor.check()
        assert report.firing, report.to_dict()
        [changed] = await store.query(EventQuery(types=["flag_changed"]))
        assert isinstance(changed, FlagChanged)
        assert changed.flag == "async_thesis" and changed.new is False
        assert changed.actor == "monitor" and "async_fallback_rate" in changed.reason

        # within the poll interval the running process still uses what it read last
        now[0] += POLL_S / 2
        await pipeline.run(GOAL)
        await writer.flush()
        fallbacks_so_far = len(await store.query(EventQuery(types=["async_fallback"])))
        # one interval later it has picked the override up: tasks run sequentially
        now[0] += POLL_S
        before = len(world.personas.called("thesis"))
        for _ in range(5):
            await pipeline.run(GOAL)
        await writer.flush()
        started = [e for e in await store.query(EventQuery(types=["task_started"]))]
        flags = [e.flags["async_thesis"] for e in started if isinstance(e, TaskStarted)]
        assert flags[:31] == [True] * 31 and flags[31:] == [False] * 5
        later = world.personas.called("thesis")[before:]
        assert len(later) == 5 and all("[E1]" in (r.system or "") for r in later)
        # sequential tasks cannot fall back: no new async_fallback events
        assert len(await store.query(EventQuery(types=["async_fallback"]))) == fallbacks_so_far
        # a second check does not roll back again
        await monitor.check()
        assert len(await store.query(EventQuery(types=["flag_changed"]))) == 1
    finally:
        await writer.aclose()
        await store.aclose()
