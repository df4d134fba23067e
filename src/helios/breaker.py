"""A deadline and a circuit breaker for the operations of one external store.

A store that refuses connections fails fast by itself; one that *hangs* (a black-holed
network path, a stalled server) would make every operation wait for its socket timeout,
and every call with it. :class:`CircuitBreaker` bounds both:

- **Deadline.** Each operation gets ``deadline_s``; past it the caller gets the store's own
  error at once. The operation is not awaited any further: it runs on in a task of its
  own and is cancelled there, because a driver may take seconds to unwind a cancelled
  statement (psycopg asks the server to cancel it and waits for the answer).
- **Circuit.** ``closed`` → ``open`` after ``failures`` consecutive failures or timeouts;
  while open every operation fails at once, without touching the network; after
  ``cooldown_s`` the circuit is ``half-open`` and the next operation is a probe, the only
  one let through: its success closes the circuit, its failure opens it for another
  cool-down. Nothing needs a restart.

What counts as a failure is the store's call (``trips``): a connection lost or refused
does, a statement the server answered with an error of its own (a unique violation) does
not, and it resets the count like a success, since the server did answer. The errors raised
for a timeout or an open circuit are the store's own (``error``), so that the layers above
keep catching what they already catch.

It stands on the ground floor because its users span the floors (the key store and the
ledger, the caches, the governor); it imports nothing but the standard library.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

T = TypeVar("T")
BreakerState = Literal["closed", "open", "half-open"]
ErrorFactory = Callable[[str, float], Exception]
"""``error(message, retry_after_s)``: the store's exception for a timeout or an open
circuit; ``retry_after_s`` is when the next probe may run (0 when it may run now)."""

logger = logging.getLogger(__name__)


class CircuitBreaker:
    """Deadline + consecutive-failure circuit for one store; see the module docstring.

    Safe for concurrent use on one event loop (its state changes between awaits only).
    """

    def __init__(
        self,
        store: str,
        *,
        error: ErrorFactory,
        trips: Callable[[BaseException], bool],
        deadline_s: float = 0.05,
        failures: int = 3,
        cooldown_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``store`` names it in messages (``Redis cache at host:port``, never a password)."""
        if deadline_s <= 0 or cooldown_s <= 0:
            raise ValueError("deadline_s and cooldown_s must be positive")
        if failures < 1:
            raise ValueError("failures must be at least 1")
        self.store = store
        self.deadline_s = deadline_s
        self.failures = failures
        self.cooldown_s = cooldown_s
        self.clock = clock
        self._error = error
        self._trips = trips
        self._consecutive = 0
        self._opened_at: float | None = None
        self._probing = False
        self._abandoned: set[asyncio.Future[Any]] = set()  # kept alive until they finish
        self.last_error: str | None = None
        self.opened = 0
        """How many times the circuit opened (a probe that fails counts again)."""
        self.rejected = 0
        """Operations refused at once because the circuit was open."""
        self.timeouts = 0

    # -- state -----------------------------------------------------------------------------
    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._probing or self.clock() - self._opened_at < self.cooldown_s:
            return "open"
        return "half-open"

    def retry_after_s(self) -> float:
        """Seconds until an operation may reach the store again (0: it may now)."""
        if self._opened_at is None:
            return 0.0
        if self._probing:
            return min(self.deadline_s, self.cooldown_s)
        return max(0.0, self._opened_at + self.cooldown_s - self.clock())

    def snapshot(self) -> dict[str, Any]:
        """Plain data for health reports and ``--json`` output."""
        return {
            "store": self.store,
            "state": self.state,
            "consecutive_failures": self._consecutive,
            "retry_after_s": round(self.retry_after_s(), 3),
            "opened": self.opened,
            "rejected": self.rejected,
            "timeouts": self.timeouts,
            "last_error": self.last_error,
            "deadline_s": self.deadline_s,
            "failures": self.failures,
            "cooldown_s": self.cooldown_s,
        }

    def describe(self) -> str:
        """One line for a health detail: ``circuit open (3 failures; next try in 4.2 s)``."""
        state = self.state
        if state == "closed":
            return "circuit closed"
        if state == "half-open":
            return "circuit half-open (the next operation probes the store)"
        return (
            f"circuit open ({self._consecutive} failures in a row;"
            f" next try in {self.retry_after_s():.1f} s)"
        )

    # -- operations ------------------------------------------------------------------------
    async def call(
        self, what: str, operation: Awaitable[T], *, deadline_s: float | None = None
    ) -> T:
        """Await ``operation`` (``what`` names it in messages) within the deadline.

        Raises the store's error at once while the circuit is open (a coroutine given then
        is closed unstarted), and when the deadline passes; re-raises what ``operation``
        raised otherwise, counting it as a failure when ``trips`` says so.
        """
        probe = self._admit(what, operation)
        limit = self.deadline_s if deadline_s is None else deadline_s
        task = asyncio.ensure_future(operation)
        try:
            done, _ = await asyncio.wait((task,), timeout=limit)
        except asyncio.CancelledError:
            self._abandon(task)
            if probe:
                self._probing = False
            raise
        if not done:
            self._abandon(task)
            self.timeouts += 1
            message = f"{self.store}: {what} timed out after {limit * 1000:g} ms"
            self._failed(message)
            raise self._error(message, self.retry_after_s())
        if task.cancelled():
            if probe:
                self._probing = False
            raise asyncio.CancelledError
        exc = task.exception()
        if exc is None:
            self._succeeded()
            return task.result()
        if self._trips(exc):
            self._failed(f"{self.store}: {what} failed: {exc}")
        else:
            self._succeeded()  # the store answered, with an error of its own
        raise exc

    def _admit(self, what: str, operation: Awaitable[Any]) -> bool:
        """Whether this operation is the half-open probe; raises while the circuit is open."""
        state = self.state
        if state == "closed":
            return False
        if state == "half-open":
            self._probing = True
            return True
        self.rejected += 1
        if inspect.iscoroutine(operation):
            operation.close()
        retry = self.retry_after_s()
        raise self._error(
            f"{self.store}: {what} not attempted: circuit open after {self._consecutive}"
            f" failures in a row (last: {self.last_error}); next try in {retry:.1f} s",
            retry,
        )

    def _succeeded(self) -> None:
        if self._opened_at is not None:
            logger.warning("%s is answering again: circuit closed", self.store)
        self._consecutive = 0
        self._opened_at = None
        self._probing = False

    def _failed(self, message: str) -> None:
        self._consecutive += 1
        self.last_error = message
        if self._probing or (self._opened_at is None and self._consecutive >= self.failures):
            self._opened_at = self.clock()
            self.opened += 1
            logger.warning(
                "%s: circuit open for %g s after %d failures in a row: %s",
                self.store,
                self.cooldown_s,
                self._consecutive,
                message,
            )
        self._probing = False

    def _abandon(self, task: asyncio.Future[Any]) -> None:
        """Stop waiting for ``task``: cancel it and let it unwind on its own."""
        task.cancel()
        self._abandoned.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Future[Any]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved, so that asyncio does not log it as lost

    async def aclose(self) -> None:
        """Wait (briefly) for abandoned operations to unwind, so that closing a pool or a
        client does not race them."""
        pending = list(self._abandoned)
        if pending:
            await asyncio.wait(pending, timeout=1.0)


def failure_log_level(breaker: CircuitBreaker | None) -> int:
    """How loudly a layer above should log a failed operation: a warning while the circuit
    is closed, debug once it is open (the breaker said so once, when it opened; a warning
    per refused operation would flood the log at the call rate)."""
    if breaker is not None and breaker.state != "closed":
        return logging.DEBUG
    return logging.WARNING
