"""Follow the ledger: feed the events other processes record to a sink as they arrive.

``helios serve`` uses it so that its ``/metrics`` count every task recorded in the ledger
(``helios run`` in another terminal, other hosts on a shared PostgreSQL ledger), not only
what runs inside the server. Events are read by their insertion sequence, never by their
timestamp: a writer whose clock runs ahead (or one event stamped in milliseconds) would
otherwise hide every later event of the other writers until the clock caught up.
"""

from __future__ import annotations

import asyncio
import logging

from helios.errors import HeliosError
from helios.ledger.sink import EventSink
from helios.ledger.store import LedgerStore

logger = logging.getLogger(__name__)


class LedgerTail:
    """Feeds ``sink`` every event appended after sequence ``after``; without it, after the
    ledger's end when :meth:`start` (or the first poll) runs."""

    def __init__(
        self,
        store: LedgerStore,
        sink: EventSink,
        *,
        after: int | None = None,
        batch_size: int = 1000,
    ) -> None:
        self.store = store
        self.sink = sink
        self.cursor = after
        """The sequence of the last event fed (``None`` until started)."""
        self.batch_size = batch_size
        self.fed = 0

    async def start(self) -> None:
        """Begin at the ledger's current end: only events recorded from now on are fed."""
        if self.cursor is None:
            self.cursor = await self.store.last_sequence()

    async def poll(self) -> int:
        """Feed the events recorded since the last poll; how many were new."""
        if self.cursor is None:
            await self.start()
            return 0
        new = 0
        while True:
            rows = await self.store.events_after(self.cursor, limit=self.batch_size)
            for sequence, event in rows:
                self.cursor = sequence  # first: an event the sink chokes on is not fed again
                try:
                    self.sink.emit(event)
                except Exception:  # one bad event must not stop the tail
                    logger.exception("ledger tail: the sink failed on event %d", sequence)
            new += len(rows)
            if len(rows) < self.batch_size:
                break
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
