"""Follow the ledger: feed the events other processes record to a sink as they arrive.

``helios serve`` uses it so that its ``/metrics`` count every task recorded in the ledger
(``helios run`` in another terminal, other hosts on a shared PostgreSQL ledger), not only
what runs inside the server. Events are read by timestamp from a cursor; those stamped
exactly at the cursor are remembered, so that none is fed twice or skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from helios.errors import HeliosError
from helios.ledger.events import Event
from helios.ledger.sink import EventSink
from helios.ledger.store import EventQuery, LedgerStore

logger = logging.getLogger(__name__)


class LedgerTail:
    def __init__(
        self,
        store: LedgerStore,
        sink: EventSink,
        *,
        since: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.sink = sink
        self.cursor = clock() if since is None else since
        self._at_cursor: set[str] = set()
        self.fed = 0

    async def poll(self) -> int:
        """Feed the events recorded since the last poll; how many were new."""
        new = 0
        for event in await self.store.query(EventQuery(since=self.cursor)):
            key = _identity(event)
            if event.timestamp == self.cursor and key in self._at_cursor:
                continue
            if event.timestamp > self.cursor:
                self.cursor, self._at_cursor = event.timestamp, set()
            self._at_cursor.add(key)
            self.sink.emit(event)
            new += 1
        self.fed += new
        return new

    async def run(self, interval_s: float) -> None:
        """Poll until cancelled; a store error is logged and retried at the next interval."""
        while True:
            try:
                await self.poll()
            except HeliosError as exc:
                logger.warning("ledger tail: %s", exc)
            await asyncio.sleep(interval_s)


def _identity(event: Event) -> str:
    return event.model_dump_json()
