"""The ledger's event sink: ``emit()`` queues, a background task writes batches.

Producers (the engine, pipelines) call :meth:`LedgerWriter.emit` on the event loop; it
appends to an in-memory queue and returns, never waiting for the store. One background
task takes up to ``batch_size`` events at a time and appends them to the store in one
transaction. It writes as soon as a batch is full, when ``flush()`` or ``aclose()`` asks,
and otherwise once the oldest queued event is ``flush_interval_s`` old, so a quiet
process still writes promptly while a busy one writes large batches.

Failure policy: an event leaves the queue only once the store has committed it. When an
append fails, its events stay at the head of the queue, in order, and the writer retries
with exponential backoff (a :class:`~helios.retries.RetryPolicy` that never gives up:
``retry_initial_s`` doubling up to ``retry_max_s``); nothing
is dropped, and the queue grows (see :attr:`pending`, :attr:`lag_s`) until the store
recovers. A ``flush()`` cuts the wait short and asks for an attempt at once; if that
attempt fails, ``flush()`` raises the :class:`LedgerError` (the events stay queued).
``aclose()`` writes everything still queued; if the store fails then, it raises and
keeps the events, so a later ``aclose()`` can try again. Only a process that dies (or a
writer task cancelled by a closing loop) loses what it had not flushed: work whose result
must outlive a crash awaits ``flush()`` before reporting it.

An implausible event (:mod:`.validation`: a timestamp in milliseconds, a NaN cost) is
refused by ``emit`` itself: not queued (the store would refuse its batch on every retry and
nothing behind it would ever be written), logged with its field, counted in
:attr:`refused`. It does not raise: a bad record must not fail the call it records.

Delivery is at least once: if a connection drops after the store committed but before it
said so, the retry writes that batch again. The SQLite store cannot see this case (its
commit is a local call); a PostgreSQL ledger may, rarely, hold such a duplicate batch.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType

from helios.errors import LedgerError
from helios.ledger.events import Event
from helios.ledger.store import LedgerStore
from helios.ledger.validation import problem
from helios.retries import RetryPolicy

logger = logging.getLogger(__name__)


class LedgerWriter:
    """An :class:`~helios.ledger.sink.EventSink` that makes events durable in ``store``."""

    def __init__(
        self,
        store: LedgerStore,
        *,
        batch_size: int = 500,
        flush_interval_s: float = 0.05,
        retry_initial_s: float = 0.1,
        retry_max_s: float = 5.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        if flush_interval_s <= 0:
            raise ValueError("flush_interval_s must be positive")
        self.store = store
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.retry = RetryPolicy(attempts=None, base_s=retry_initial_s, cap_s=retry_max_s)
        self._queue: deque[tuple[float, Event]] = deque()  # (monotonic time emitted, event)
        self._emitted = 0  # events ever emitted; the last one's sequence number
        self._written = 0  # events committed: the queue holds ``_written + 1 ..``
        self._flushes: deque[tuple[int, asyncio.Future[None]]] = deque()  # (target, waiter)
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self.refused = 0
        """Implausible events ``emit`` left out."""
        self.last_error: LedgerError | None = None
        """The last failed append's error; ``None`` once an append succeeds again."""

    # -- the sink --------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        """Queue ``event``; returns at once. Call on the event loop (the first call starts
        the background task); raises :class:`LedgerError` once the writer is closed. An
        implausible event is logged and left out (see the module doc)."""
        if self._closed:
            raise LedgerError(f"ledger writer is closed; {event.type} event not recorded")
        found = problem(event, now=time.time())
        if found is not None:
            self.refused += 1
            logger.error(
                "ledger: refused %s event of task %r: %s; not recorded",
                event.type,
                event.task_id,
                found,
            )
            return
        self._queue.append((time.monotonic(), event))
        self._emitted += 1
        if len(self._queue) == 1 or len(self._queue) == self.batch_size:
            self._wakeup.set()
        self._ensure_started()

    # -- control ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the background task now (from a running loop); ``emit`` starts it too."""
        self._ensure_started()

    async def flush(self) -> None:
        """Return once every event emitted before this call is committed; raises
        :class:`LedgerError` if the attempt to write them fails (they stay queued)."""
        target = self._emitted
        if self._written >= target:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._flushes.append((target, waiter))
        self._ensure_started()
        self._wakeup.set()
        await waiter

    async def aclose(self) -> None:
        """Write everything queued, then stop; raises :class:`LedgerError` (keeping the
        events, and the writer open) if the store fails."""
        self._closing = True
        if self._queue:
            self._ensure_started()
        task = self._task
        if task is not None:
            self._wakeup.set()
            await task
        if self._queue:
            self._closing = False
            self._ensure_started()
            error = self.last_error or LedgerError("ledger writer stopped with events queued")
            raise LedgerError(
                f"ledger writer closing with {len(self._queue)} events unwritten: {error}"
            ) from error
        self._closed = True

    async def __aenter__(self) -> LedgerWriter:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- metrics ---------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Events emitted but not yet committed."""
        return len(self._queue)

    @property
    def lag_s(self) -> float:
        """How long the oldest uncommitted event has waited (0 when none waits)."""
        if not self._queue:
            return 0.0
        return max(0.0, time.monotonic() - self._queue[0][0])

    # -- the background task ---------------------------------------------------------------
    def _ensure_started(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="helios-ledger-writer"
            )

    def _urgent(self) -> bool:
        return self._closing or bool(self._flushes)

    async def _run(self) -> None:
        failures = 0  # appends failed in a row
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._idle_until(
                self._queue[0][0] + self.flush_interval_s,
                lambda: self._urgent() or len(self._queue) >= self.batch_size,
            )
            batch = [event for _, event in itertools.islice(self._queue, self.batch_size)]
            try:
                await self.store.append(batch)
            except Exception as exc:  # any failure: keep the events, report, retry
                self._failed(exc, len(batch))
                if self._closing:
                    return  # aclose() raises; the events stay queued
                failures += 1
                backoff = self.retry.delay_s(failures)
                assert backoff is not None  # a policy without an attempt limit
                await self._idle_until(time.monotonic() + backoff, self._urgent)
                continue
            failures = 0
            self.last_error = None
            for _ in batch:
                self._queue.popleft()
            self._written += len(batch)
            while self._flushes and self._flushes[0][0] <= self._written:
                _, waiter = self._flushes.popleft()
                if not waiter.done():
                    waiter.set_result(None)

    def _failed(self, exc: Exception, batch_size: int) -> None:
        error = (
            exc
            if isinstance(exc, LedgerError)
            else LedgerError(f"ledger store {self.store.name} failed: {exc!r}")
        )
        if error is not exc:
            error.__cause__ = exc
        self.last_error = error
        logger.warning(
            "ledger append of %d events failed; %d events kept for retry: %s",
            batch_size,
            len(self._queue),
            error,
        )
        while self._flushes:
            _, waiter = self._flushes.popleft()
            if not waiter.done():
                waiter.set_exception(error)

    async def _idle_until(self, deadline: float, done: Callable[[], bool]) -> None:
        """Wait until ``deadline`` (monotonic) or until ``done()`` holds after a wakeup."""
        while not done():
            delay = deadline - time.monotonic()
            if delay <= 0:
                return
            self._wakeup.clear()
            try:
                async with asyncio.timeout(delay):
                    await self._wakeup.wait()
            except TimeoutError:
                return
