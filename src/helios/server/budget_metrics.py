"""The governor's budget windows on ``/metrics``: refreshed at each scrape, then collected.

``GET /metrics`` awaits :meth:`BudgetCollector.refresh` (one
:meth:`~helios.governance.governor.Governor.status` read: a query of the governor's state
store, bounded by its deadline) before rendering, so each scrape shows the windows as they
are. A window's numbers are in its budget's unit, which is in the family's name
(``helios_budget_used_tokens``, ``..._requests``, ``..._usd``); ``helios_budget_used_ratio``
(used and reserved over the limit) puts every window on one scale. Only the configured
budgets are shown, not each API key's own. When the state store cannot be read, the budget
families are left out of that scrape (an absent series, not a stale number) and a warning
is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from helios.config.governor import BudgetUnit
from helios.errors import HeliosError
from helios.governance.governor import Governor, WindowStatus

logger = logging.getLogger(__name__)

UNITS: tuple[BudgetUnit, ...] = ("tokens", "requests", "usd")
_FIELDS = (
    ("limit", "The window's limit"),
    ("used", "What the window has used"),
    ("reserved", "What calls in flight have reserved in the window"),
    ("remaining", "What the window has left (limit less used and reserved)"),
)
_RATIO = (
    "helios_budget_used_ratio",
    "Used and reserved over the limit of each budget window (1: full).",
)
_LABELS = ["account", "window"]


@dataclass(frozen=True, slots=True)
class _Window:
    unit: BudgetUnit
    status: WindowStatus


class BudgetCollector(Collector):
    """Samples of the windows ``current()``'s governor reported at the last refresh."""

    def __init__(self, current: Callable[[], Governor | None]) -> None:
        self.current = current
        self._windows: Sequence[_Window] = ()

    async def refresh(self) -> None:
        governor = self.current()
        if governor is None:
            self._windows = ()
            return
        units = {budget.account: budget.unit for budget in governor.budgets}
        try:
            statuses = await governor.status()
        except HeliosError as exc:
            logger.warning("metrics: budget windows left out of this scrape: %s", exc)
            self._windows = ()
            return
        self._windows = [
            _Window(units[status.account], status) for status in statuses if status.account in units
        ]

    def describe(self) -> Iterator[Metric]:
        """The families, without samples: the registry checks their names are unique."""
        for unit in UNITS:
            for field, documentation in _FIELDS:
                yield GaugeMetricFamily(_name(field, unit), documentation, labels=_LABELS)
        yield GaugeMetricFamily(*_RATIO, labels=_LABELS)

    def collect(self) -> Iterator[Metric]:
        windows = self._windows
        if not windows:
            return
        for unit in UNITS:
            mine = [window.status for window in windows if window.unit == unit]
            if not mine:
                continue
            for field, documentation in _FIELDS:
                family = GaugeMetricFamily(
                    _name(field, unit), f"{documentation} ({unit}).", labels=_LABELS
                )
                for status in mine:
                    family.add_metric([status.account, status.window], getattr(status, field))
                yield family
        ratio = GaugeMetricFamily(*_RATIO, labels=_LABELS)
        for window in windows:
            status = window.status
            if status.limit > 0:
                used = (status.used + status.reserved) / status.limit
                ratio.add_metric([status.account, status.window], used)
        yield ratio


def _name(field: str, unit: BudgetUnit) -> str:
    return f"helios_budget_{field}_{unit}"
