"""A worker process for the multi-process tests (not a test module).

``python -m tests.governance.reserve_worker KIND LOCATION ATTEMPTS LIMIT`` opens the governor
state (sqlite: LOCATION is the file; redis: LOCATION is the key prefix on the server at
``HELIOS_TEST_REDIS_URL``, with the server's clock), tries ATTEMPTS one-request
reservations against one budget of LIMIT requests, and prints how many it was granted.
"""

from __future__ import annotations

import asyncio
import os
import sys

from helios.catalog import Catalog
from helios.config.governor import BudgetSettings, WindowSettings
from helios.errors import BudgetExceeded
from helios.governance.governor import Governor
from helios.governance.state.base import GovernorState
from helios.governance.state.sqlite import SQLiteState
from helios.messages import Request


def open_state(kind: str, location: str) -> GovernorState:
    if kind == "sqlite":
        return SQLiteState(location)
    from helios.governance.state.redis import RedisState

    return RedisState(os.environ["HELIOS_TEST_REDIS_URL"], prefix=location)


def budget(limit: float) -> BudgetSettings:
    return BudgetSettings(
        account="shared",
        unit="requests",
        high_priority_share=0.0,
        on_exhausted="reject",
        windows=[
            WindowSettings(name="5h", kind="session", limit=limit),
            WindowSettings(name="day", kind="sliding", length_s=86400, limit=limit),
        ],
    )


async def main(kind: str, location: str, attempts: int, limit: float) -> int:
    governor = Governor(open_state(kind, location), [budget(limit)], Catalog([]))
    granted = 0
    try:
        for _ in range(attempts):
            try:
                await governor.reserve(Request.of("hi"), "anthropic", "big")
            except BudgetExceeded:
                continue
            granted += 1
    finally:
        await governor.close()
    return granted


if __name__ == "__main__":
    kind, location, attempts, limit = sys.argv[1:5]
    print(asyncio.run(main(kind, location, int(attempts), float(limit))))
