"""What the routes share: built once by :func:`~helios.server.app.create_app`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from helios.ledger.metrics import HeliosMetrics
from helios.ledger.monitor import HealthMonitor, HealthReport
from helios.ledger.store import LedgerStore
from helios.settings import Settings


@dataclass
class ServerState:
    settings: Settings
    metrics: HeliosMetrics
    store: LedgerStore | None = None
    """Set at start-up when the ledger is enabled (given, or opened from the settings)."""
    monitor: HealthMonitor | None = None
    monitor_task: asyncio.Task[HealthReport | None] | None = None

    @property
    def monitor_running(self) -> bool:
        return self.monitor_task is not None and not self.monitor_task.done()
