"""What the routes share: built once by :func:`~helios.server.app.create_app`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from helios.cache.manager import CacheManager
from helios.config.settings import Settings
from helios.ledger.store import LedgerStore
from helios.ops.metrics import HeliosMetrics
from helios.ops.monitor import HealthMonitor, HealthReport
from helios.providers.registry import ProviderRegistry
from helios.runtime import Runtime
from helios.server.auth import KeyGuard
from helios.tasks.host import TaskHost
from helios.tasks.service import TaskService


@dataclass
class ServerState:
    settings: Settings
    metrics: HeliosMetrics
    store: LedgerStore | None = None
    """Set at start-up when the ledger is enabled (given, or opened from the settings)."""
    monitor: HealthMonitor | None = None
    monitor_task: asyncio.Task[HealthReport | None] | asyncio.Task[None] | None = None
    cache: CacheManager | None = None
    """The response cache (given, or built from ``settings.cache`` at start-up); ``None``
    when ``cache.enabled`` is false."""
    registry: ProviderRegistry | None = None
    """Resolves model specs for the cache routes; it builds no provider, so imports no SDK."""
    runtime: Runtime | None = None
    """Everything Helios assembled for this app (set while the app runs)."""
    auth: KeyGuard | None = None
    """Who is calling (:mod:`helios.server.auth`); set while the app runs."""
    task_host: TaskHost | None = None
    """This process's DBOS and place in the fleet; set with ``tasks``."""
    tasks: TaskService | None = None
    """Durable tasks (:mod:`helios.tasks`); set while the app runs with ``tasks.enabled``."""

    def forget_runtime(self) -> None:
        """Drop the closed runtime's parts: a restarted lifespan opens a fresh one. The
        monitor's task stays, done, for whoever checks how it ended."""
        self.runtime = self.store = self.cache = self.registry = None
        self.auth = None
        self.tasks = None
        self.task_host = None

    @property
    def monitor_running(self) -> bool:
        return self.monitor_task is not None and not self.monitor_task.done()
