"""The health monitor on a schedule, once per interval for a whole fleet.

Every server that takes tasks asks for the check of the current window (``monitor.interval_s``
long, counted from the epoch) as a DBOS workflow whose id names the window: the first ask
runs it, every later one (another server, or this one after a restart) gets its report. So
N servers roll a flag back once, not N times, and a check cut short by a crash is finished
by whoever asks next. Like the task workflow, it is registered at import (DBOS finds it by
name on recovery).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from dbos import DBOS, SetWorkflowID

from helios.ops.monitor import HealthReport
from helios.tasks.workflow import current_host

logger = logging.getLogger("helios.monitor")
WORKFLOW_NAME = "helios_health_check"


@DBOS.workflow(name=WORKFLOW_NAME)
async def fleet_health_check(window: int) -> HealthReport | None:
    monitor = current_host().runtime.monitor
    if monitor is None:  # no ledger: nothing to watch
        return None
    return await DBOS.run_step_async({"name": "check"}, monitor.check)


async def run_on_schedule(
    interval_s: float,
    on_report: Callable[[HealthReport], None],
    *,
    clock: Callable[[], float] = time.time,
) -> None:
    """Check at start-up, then at every window's start, until cancelled; a failed check is
    logged and tried again at the next window."""
    while True:
        window = int(clock() // interval_s)
        try:
            with SetWorkflowID(f"health-check-{int(interval_s)}-{window}"):
                handle = await DBOS.start_workflow_async(fleet_health_check, window)
            report = await handle.get_result()
        except Exception as exc:  # a failing database must not end the schedule: log, retry
            logger.warning("health check for window %d failed: %s", window, exc)
        else:
            if report is not None:
                on_report(report)
        await asyncio.sleep(max((window + 1) * interval_s - clock(), 0.0))
