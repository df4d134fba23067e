"""One contract for every governor state backend: memory, SQLite, Redis."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from helios.governance.windows import Charge, WindowSpec
from tests.governance.conftest import FakeClock, MakeState

SESSION = WindowSpec("acct:5h", "session", 100.0)
SLIDING = WindowSpec("acct:day", "sliding", 300.0)
BOTH = (SESSION, SLIDING)


def rid() -> str:
    return uuid.uuid4().hex


def charge(window: WindowSpec, amount: float, limit: float = 10.0) -> Charge:
    return Charge(window, amount, limit)


@pytest.mark.parametrize("window", BOTH, ids=["session", "sliding"])
async def test_reserve_within_limit_then_refuse(
    make_state: MakeState, clock: FakeClock, window: WindowSpec
) -> None:
    state = make_state()
    first = await state.try_reserve(rid(), [charge(window, 6)], clock())
    assert first.ok
    assert first.windows[0].reserved == pytest.approx(6)
    second = await state.try_reserve(rid(), [charge(window, 5)], clock())
    assert not second.ok
    assert second.blocked == (0,)
    assert second.windows[0].reserved == pytest.approx(6)
    exact = await state.try_reserve(rid(), [charge(window, 4)], clock())
    assert exact.ok


async def test_all_or_nothing_across_windows(make_state: MakeState, clock: FakeClock) -> None:
    state = make_state()
    assert (await state.try_reserve(rid(), [charge(SLIDING, 8)], clock())).ok
    result = await state.try_reserve(rid(), [charge(SESSION, 5), charge(SLIDING, 5)], clock())
    assert not result.ok
    assert result.blocked == (1,)
    session, sliding = await state.usage(BOTH, clock())
    assert session.reserved == 0  # nothing was taken on the window that had room
    assert sliding.reserved == pytest.approx(8)


async def test_commit_replaces_estimate_and_release_frees(
    make_state: MakeState, clock: FakeClock
) -> None:
    state = make_state()
    kept, dropped = rid(), rid()
    assert (await state.try_reserve(kept, [charge(SESSION, 6)], clock())).ok
    assert (await state.try_reserve(dropped, [charge(SESSION, 3)], clock())).ok
    await state.commit(kept, [charge(SESSION, 2)], clock())
    await state.release(dropped, [SESSION], clock())
    (usage,) = await state.usage([SESSION], clock())
    assert usage.used == pytest.approx(2)
    assert usage.reserved == 0
    assert (await state.try_reserve(rid(), [charge(SESSION, 8)], clock())).ok


async def test_session_starts_at_first_request_and_resets(
    make_state: MakeState, clock: FakeClock
) -> None:
    state = make_state()
    (idle,) = await state.usage([SESSION], clock())
    assert idle.resets_at is None  # reading starts no session
    clock.advance(50)
    started = clock()
    first = rid()
    result = await state.try_reserve(first, [charge(SESSION, 7)], clock())
    assert result.windows[0].resets_at == pytest.approx(started + 100)
    await state.commit(first, [charge(SESSION, 7)], clock())
    clock.advance(99)
    blocked = await state.try_reserve(rid(), [charge(SESSION, 7)], clock())
    assert not blocked.ok
    assert blocked.windows[0].frees_at == pytest.approx(started + 100)
    clock.advance(1)  # the session is over: used resets, the next request starts a new one
    (after,) = await state.usage([SESSION], clock())
    assert after.used == 0
    assert after.resets_at is None
    again = await state.try_reserve(rid(), [charge(SESSION, 7)], clock())
    assert again.ok
    assert again.windows[0].resets_at == pytest.approx(clock() + 100)


async def test_sliding_forgets_old_usage(make_state: MakeState, clock: FakeClock) -> None:
    state = make_state()
    for amount in (4, 4):
        reservation = rid()
        assert (await state.try_reserve(reservation, [charge(SLIDING, amount)], clock())).ok
        await state.commit(reservation, [charge(SLIDING, amount)], clock())
        clock.advance(100)
    blocked = await state.try_reserve(rid(), [charge(SLIDING, 5)], clock())
    assert not blocked.ok
    # the first 4 units (committed at t0) are forgotten 300 s later, one bucket late at most
    frees_at = blocked.windows[0].frees_at
    assert frees_at is not None
    assert clock() + 100 <= frees_at <= clock() + 101
    clock.advance(101)
    (usage,) = await state.usage([SLIDING], clock())
    assert usage.used == pytest.approx(4)
    assert (await state.try_reserve(rid(), [charge(SLIDING, 5)], clock())).ok


async def test_waiting_cannot_help_when_reservations_fill_the_window(
    make_state: MakeState, clock: FakeClock
) -> None:
    state = make_state()
    assert (await state.try_reserve(rid(), [charge(SLIDING, 8)], clock())).ok
    blocked = await state.try_reserve(rid(), [charge(SLIDING, 5)], clock())
    assert not blocked.ok
    assert blocked.windows[0].frees_at is None


async def test_clock_jumping_backwards(make_state: MakeState, clock: FakeClock) -> None:
    state = make_state()
    first = rid()
    assert (await state.try_reserve(first, [charge(SESSION, 4), charge(SLIDING, 4)], clock())).ok
    await state.commit(first, [charge(SESSION, 4), charge(SLIDING, 4)], clock())
    clock.advance(-1000)  # the session's start now lies in the future: it starts "now"
    session, sliding = await state.usage(BOTH, clock())
    assert session.used == pytest.approx(4)
    assert session.resets_at == pytest.approx(clock() + 100)
    assert sliding.used == pytest.approx(4)  # future usage is kept, never dropped early
    assert not (await state.try_reserve(rid(), [charge(SESSION, 7)], clock())).ok
    clock.advance(100)
    assert (await state.try_reserve(rid(), [charge(SESSION, 7)], clock())).ok


async def test_stale_reservations_are_dropped(make_state: MakeState, clock: FakeClock) -> None:
    state = make_state()
    assert (await state.try_reserve(rid(), [charge(SLIDING, 9)], clock())).ok
    clock.advance(state.stale_after_s + 1)
    (usage,) = await state.usage([SLIDING], clock())
    assert usage.reserved == 0


async def test_state_persists_across_instances(make_state: MakeState, clock: FakeClock) -> None:
    first = make_state()
    assert (await first.try_reserve(rid(), [charge(SESSION, 6)], clock())).ok
    second = make_state()
    assert not (await second.try_reserve(rid(), [charge(SESSION, 6)], clock())).ok


async def test_concurrent_reservers_never_over_commit(
    make_state: MakeState, clock: FakeClock
) -> None:
    state = make_state()
    limit = 150.0
    charges = [Charge(SESSION, 1.0, limit), Charge(SLIDING, 1.0, limit)]
    results = await asyncio.gather(
        *(state.try_reserve(rid(), charges, clock()) for _ in range(200))
    )
    granted = sum(result.ok for result in results)
    assert granted == 150
    session, sliding = await state.usage(BOTH, clock())
    assert session.reserved == pytest.approx(150)
    assert sliding.reserved == pytest.approx(150)
