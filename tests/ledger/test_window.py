"""``LedgerStore.window_facts``: what the dashboard's overview reads of a time window, the
same from every store, and the same as counting the decoded events."""

from __future__ import annotations

import math
from collections import Counter

from helios.ledger.events import CacheLookup, PersonaLLMRun, TaskFinished, TaskStarted
from helios.ledger.window import facts_from_events
from tests.ledger.conftest import EPOCH, Ledger
from tests.server.dashboard_fixtures import seed_events


async def test_every_store_reads_a_window_as_its_events_say(ledger: Ledger) -> None:
    store = ledger.open()
    now = EPOCH + 100_000
    events = seed_events(now)
    await store.append(events)
    since, until = now - 3600, now
    facts = await store.window_facts(since, until)
    inside = [e for e in events if since <= e.timestamp <= until]
    starts = [e for e in inside if isinstance(e, TaskStarted)]
    finishes = [e for e in inside if isinstance(e, TaskFinished)]
    calls = [e for e in inside if isinstance(e, PersonaLLMRun)]
    lookups = [e for e in inside if isinstance(e, CacheLookup)]
    assert 0 < len(starts) < sum(isinstance(e, TaskStarted) for e in events)  # some are out

    assert sum(facts.starts_per_minute.values()) == len(starts)
    assert facts.starts_per_minute == Counter(math.floor(e.timestamp / 60) for e in starts)
    assert facts.finishes == Counter((e.success, e.accepted_pass is not None) for e in finishes)
    assert facts.lookups == Counter((e.layer, e.persona, e.hit) for e in lookups)
    assert sorted(facts.calls, key=repr) == sorted(
        facts_from_events(calls, since, until).calls, key=repr
    )
    assert {c.cost_usd is None for c in facts.calls} == {True, False}  # unknown prices kept
    assert {c.cache_layer for c in facts.calls} == {None, "L2", "L3"}


async def test_the_window_includes_both_ends(ledger: Ledger) -> None:
    store = ledger.open()
    await store.append(
        [
            TaskStarted(task_id="early", goal="g", timestamp=EPOCH + 59.0),
            TaskStarted(task_id="first", goal="g", timestamp=EPOCH + 60.0),
            TaskStarted(task_id="last", goal="g", timestamp=EPOCH + 120.0),
            TaskStarted(task_id="late", goal="g", timestamp=EPOCH + 120.5),
        ]
    )
    facts = await store.window_facts(EPOCH + 60.0, EPOCH + 120.0)
    minute = math.floor(EPOCH / 60)
    assert facts.starts_per_minute == Counter({minute + 1: 1, minute + 2: 1})
