"""DAG admission from the governor's budget windows: start, wait for a reset, or refuse.

The engine reserves every call itself (and defers inside the call); this check runs before
a DAG task takes a slot, so that a task facing a full window waits outside the scheduler's
concurrency limit instead of holding a slot while it sleeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from helios.errors import BudgetExceeded
from helios.governance.governor import Governor
from helios.pipeline.dag import TaskSpec
from helios.pipeline.scheduler import AdmitDecision

DEFAULT_MAX_DEFER_S = 600.0


class GovernorAdmission:
    def __init__(
        self,
        governor: Governor,
        *,
        max_defer_s: float = DEFAULT_MAX_DEFER_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.governor = governor
        self.max_defer_s = max_defer_s
        self.clock = clock

    async def admit(self, task: TaskSpec) -> AdmitDecision:
        full = [w for w in await self.governor.status() if w.remaining <= 0]
        if not full:
            return AdmitDecision.allow()
        now = self.clock()
        waits = [w.resets_at - now for w in full if w.resets_at is not None]
        if waits and len(waits) == len(full) and max(waits) <= self.max_defer_s:
            names = ", ".join(f"{w.account}/{w.window}" for w in full)
            return AdmitDecision.defer(max(max(waits), 0.0), f"waiting for {names} to reset")
        window = full[0]
        return AdmitDecision.over_budget(
            BudgetExceeded(
                f"budget {window.account}/{window.window} is used up",
                account=window.account,
                window=window.window,
                resets_at=window.resets_at,
            )
        )


def admission_for(governor: Governor | None) -> GovernorAdmission | None:
    """DAG admission when budgets are configured; ``None`` (admit everything) otherwise."""
    return GovernorAdmission(governor) if governor is not None else None
