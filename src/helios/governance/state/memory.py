"""Governor state in this process's memory: one asyncio lock makes each step atomic."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from helios.governance import windows as w
from helios.governance.state.base import DEFAULT_STALE_AFTER_S, GovernorState


class MemoryState(GovernorState):
    def __init__(self, *, stale_after_s: float = DEFAULT_STALE_AFTER_S) -> None:
        self.stale_after_s = stale_after_s
        self._lock = asyncio.Lock()
        self._states: dict[str, w.WindowState] = {}

    def _state(self, key: str) -> w.WindowState:
        return self._states.setdefault(key, w.WindowState())

    async def try_reserve(
        self, reservation_id: str, charges: Sequence[w.Charge], now: float
    ) -> w.ReserveResult:
        async with self._lock:
            states = [self._state(charge.window.key) for charge in charges]
            return w.try_reserve(states, charges, reservation_id, now, self.stale_after_s)

    async def settle(self, reservation_id: str, charges: Sequence[w.Charge], now: float) -> None:
        async with self._lock:
            states = [self._state(charge.window.key) for charge in charges]
            w.settle(states, charges, reservation_id, now, self.stale_after_s)

    async def usage(self, windows: Sequence[w.WindowSpec], now: float) -> list[w.WindowUsage]:
        async with self._lock:
            result = []
            for spec in windows:
                state = self._state(spec.key)
                w.refresh(spec, state, now, self.stale_after_s, begin=False)
                result.append(w.snapshot(spec, state))
            return result
