"""The health monitor's schedule: one check per window for every server that shares the
task database (here two schedules in one process stand for two servers)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from helios.ops.monitor import HealthReport
from helios.tasks.health import run_on_schedule
from helios.tasks.host import TaskHost


async def test_two_servers_share_one_check_per_window(
    host: TaskHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monitor = host.runtime.monitor
    assert monitor is not None
    checks: list[float] = []
    real_check = monitor.check

    async def counted() -> HealthReport:
        checks.append(asyncio.get_running_loop().time())
        return await real_check()

    monkeypatch.setattr(monitor, "check", counted)
    reports: list[list[HealthReport]] = [[], []]
    clock = 7_200.5  # inside window 2 of an hour-long interval

    def schedule(n: int) -> Any:
        return run_on_schedule(3600, reports[n].append, clock=lambda: clock)

    servers = [asyncio.create_task(schedule(n)) for n in range(2)]
    for _ in range(200):
        if all(reports):
            break
        await asyncio.sleep(0.02)
    for server in servers:
        server.cancel()
    await asyncio.gather(*servers, return_exceptions=True)
    assert len(checks) == 1
    assert reports[0][0].checked_at == reports[1][0].checked_at  # the same report
