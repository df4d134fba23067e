"""When to try again and how long to wait first: one policy for every retry loop in Helios.

Four loops retry: model calls (:class:`~helios.providers.retry.RetryingProvider`), alert
webhooks (:class:`~helios.ops.alerts.Alerter`), DAG tasks
(:class:`~helios.pipeline.scheduler.DagScheduler`) and ledger appends
(:class:`~helios.ledger.writer.LedgerWriter`). What counts as worth another try differs
(a retryable :class:`~helios.errors.HeliosError`, an HTTP status, any task failure but bad
input, any store failure), and so does how they wait (a stream retries only before its first
chunk; the ledger writer's wait ends early when a flush asks). The schedule is the same
thing each time, so it lives here: :class:`RetryPolicy` says how many attempts, how long
before each retry and when to give up, and the loops ask it.

It stands on the ground floor, with no optional dependency, because its users span the
floors from the ledger up to the pipeline. A library such as tenacity would own the loop
itself, which is exactly the part that differs from one user to the next.

Where it differs from the provider SDKs' own retries, which every adapter turns off so
that one policy decides whatever the provider:

- The OpenAI and Anthropic SDKs back off ``min(0.5 * 2**n, 8)`` seconds less up to a
  quarter (the shape of ``RetryingProvider``'s defaults, with its own cap). They honour a
  server's ``retry-after``, OpenAI's up to two minutes (longer ones fall back to the
  backoff), Anthropic's however long, an hour included: the call blocks.
- google-genai (tenacity) waits ``1 * 2**n`` seconds plus up to one second of added
  jitter, capped at 60, and ignores ``retry-after`` altogether.
- Here a ``retry-after`` is waited exactly, up to ``max_retry_wait_s``
  (``providers.<name>.max_retry_wait_s``); a longer one is not slept through but handed
  back to the caller as :class:`~helios.errors.RateLimited` (whose governor can defer
  the work), and never replaced by a shorter guess of our own.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

# 2.0 ** 1024 overflows a float and raises: a loop that never gives up (the ledger writer)
# could get there. 2 ** 1000 times any sane base is past every cap anyway.
_MAX_DOUBLINGS = 1000


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many attempts, and how long before each retry.

    The wait before retry ``n`` (``n`` = 1 after the first failure) is
    ``min(base_s * 2 ** (n - 1), cap_s)``, less up to ``jitter`` of it at random, so that
    callers failing together do not all come back at the same instant. A server's
    ``retry-after`` replaces that wait exactly (no jitter, no cap) when it is at most
    ``max_retry_wait_s``; a longer one gives up.
    """

    attempts: int | None = 3
    """Tries in all, the first included; ``None`` never gives up."""
    base_s: float = 0.5
    """The wait before the first retry; it doubles for each one after."""
    cap_s: float = math.inf
    """The longest backoff wait."""
    jitter: float = 0.0
    """The most of a backoff wait taken off at random: 0.25 waits 75-100 % of it."""
    max_retry_wait_s: float = math.inf
    """The longest ``retry-after`` waited; a longer one goes back to the caller."""

    def __post_init__(self) -> None:
        if self.attempts is not None and self.attempts < 1:
            raise ValueError("attempts must be at least 1 (the first try)")
        if self.base_s < 0 or self.cap_s < 0 or self.max_retry_wait_s < 0:
            raise ValueError("waits must not be negative")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be from 0 to 1")

    def delay_s(
        self,
        failures: int,
        *,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> float | None:
        """Seconds to wait after ``failures`` failed attempts in a row before the next one,
        or ``None`` to give up: no attempt left, or a ``retry_after`` beyond
        ``max_retry_wait_s``. ``rng`` draws the jitter (the ``random`` module's without)."""
        if failures < 1:
            raise ValueError("failures counts the failed attempts: at least 1")
        if self.attempts is not None and failures >= self.attempts:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_wait_s else None
        backoff = min(self.base_s * 2.0 ** min(failures - 1, _MAX_DOUBLINGS), self.cap_s)
        if not self.jitter:
            return backoff
        draw = rng.random() if rng is not None else random.random()
        return backoff * (1.0 - self.jitter * draw)
