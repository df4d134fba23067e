"""The contract every governor state backend keeps: atomic, all-or-nothing reservations.

A call is charged against several windows (every window of every budget that covers its
provider). :meth:`GovernorState.try_reserve` checks *all* of them and reserves on all or on
none, in one atomic step (a lock, one SQLite write transaction, one Redis Lua script), so
concurrent callers, in one process or many, can never over-commit a window.

``now`` is the caller's wall clock (see :mod:`helios.governance.windows`); a backend with
a shared clock of its own (Redis ``TIME``) may use that instead and says so in
``ReserveResult.now``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from helios.breaker import CircuitBreaker
from helios.governance.windows import Charge, ReserveResult, WindowSpec, WindowUsage

DEFAULT_STALE_AFTER_S = 3600.0


class GovernorState(ABC):
    stale_after_s: float = DEFAULT_STALE_AFTER_S
    breaker: CircuitBreaker | None = None
    """The deadline and circuit breaker of a state on a network store (``None``: local)."""

    @abstractmethod
    async def try_reserve(
        self, reservation_id: str, charges: Sequence[Charge], now: float
    ) -> ReserveResult:
        """Reserve ``charge.amount`` on every window if each stays within ``charge.limit``;
        otherwise reserve nothing. A session window with no session running starts one."""

    @abstractmethod
    async def settle(self, reservation_id: str, charges: Sequence[Charge], now: float) -> None:
        """Drop the reservation on each window and record ``charge.amount`` as used there."""

    @abstractmethod
    async def usage(self, windows: Sequence[WindowSpec], now: float) -> list[WindowUsage]:
        """What each window has used and holds reserved now (starts no session)."""

    async def commit(self, reservation_id: str, charges: Sequence[Charge], now: float) -> None:
        """The actual usage (``charges``) replaces the reservation."""
        await self.settle(reservation_id, charges, now)

    async def release(self, reservation_id: str, windows: Sequence[WindowSpec], now: float) -> None:
        """Give the reservation back, recording no usage."""
        await self.settle(reservation_id, [Charge(window, 0.0) for window in windows], now)

    async def close(self) -> None:  # noqa: B027 - most backends hold nothing to close
        """Free connections; the state itself persists (except in memory)."""
