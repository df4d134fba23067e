"""Everything one simulator instance remembers: warm prefixes, queued faults, stats, RNGs.

The app's event loop (in the server thread) and the test thread both touch a
:class:`SimState`, so every mutation happens under one lock. :meth:`SimState.reset`
returns the state to how it was built, clock included.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from helios.catalog import Catalog
from helios.sim.cache import PromptUsage, WarmPrefixes
from helios.sim.config import (
    PROFILE_KINDS,
    Fault,
    FaultProfile,
    LatencyProfile,
    ProtocolName,
    SimConfig,
)
from helios.sim.text import Reply, Segment, reply_for
from helios.sim.tools import planned_reply
from helios.sim.wire import SimCall

# Credentials are never kept, even fake ones: records may be printed in test failures.
_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key", "api-key"})


@dataclass(frozen=True)
class SimStats:
    """A snapshot: requests served per protocol and faults fired per kind."""

    requests: Mapping[str, int]
    faults_fired: Mapping[str, int]

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "faults_fired": dict(self.faults_fired),
            "total_requests": self.total_requests,
        }


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received, so tests can check what an adapter actually sent."""

    protocol: ProtocolName
    path: str
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class _QueuedFault:
    fault: Fault
    remaining: int | None  # None: until reset
    protocol: ProtocolName | None


@dataclass(frozen=True)
class Pacing:
    """Delays for one reply: ``ttft_s`` before the first chunk, ``gaps_s`` before each next."""

    ttft_s: float
    gaps_s: tuple[float, ...]

    @property
    def total_s(self) -> float:
        return self.ttft_s + sum(self.gaps_s)


class Pacer:
    """Draws latency delays from a profile with a seeded RNG, so a run can be replayed."""

    def __init__(self, profile: LatencyProfile, seed: int | str) -> None:
        self.profile = profile
        # A str seed is hashed by SHA-512 (random's version 2), so it is stable across runs
        # and processes, unlike hash().
        self._rng = random.Random(seed)

    def pacing(self, chunks: int) -> Pacing:
        if self.profile.total_mean_s is not None:
            return self._drawn(self.profile.total_mean_s, chunks)
        ttft = self._vary(self.profile.ttft_s)
        rate = self.profile.tokens_per_s
        gap = 0.0 if rate is None else 1.0 / rate
        return Pacing(ttft, tuple(self._vary(gap) for _ in range(max(chunks - 1, 0))))

    def _drawn(self, mean_s: float, chunks: int) -> Pacing:
        profile = self.profile
        total = max(profile.total_min_s, self._rng.normalvariate(mean_s, profile.total_sd_s))
        if chunks <= 1:
            # No gap to spread the rest over: all of it before the only chunk (or trailer).
            return Pacing(total, ())
        ttft = total * profile.ttft_fraction
        gap = (total - ttft) / (chunks - 1)
        return Pacing(ttft, (gap,) * (chunks - 1))

    def _vary(self, seconds: float) -> float:
        if seconds == 0.0 or self.profile.jitter == 0.0:
            return seconds
        return seconds * (1.0 + self._rng.uniform(-self.profile.jitter, self.profile.jitter))


class FaultDraws:
    """Draws a fault (or none) per request from a :class:`FaultProfile` with a seeded RNG."""

    def __init__(self, profile: FaultProfile, seed: int | str) -> None:
        self.profile = profile
        self._rng = random.Random(seed)

    def draw(self) -> Fault | None:
        if self.profile.total == 0.0:
            return None
        # Two draws every time, whatever the first gives: request n meets the same fault
        # in every run, even when an earlier request drew a different kind.
        roll, flip = self._rng.random(), self._rng.random()
        for kind in PROFILE_KINDS:
            roll -= self.profile.rate(kind)
            if roll < 0.0:
                return self.profile.fault(kind, overloaded=flip < 0.5)
        return None


class SimState:
    """The mutable side of one simulator app (``app.state.sim``)."""

    def __init__(self, config: SimConfig | None = None, *, catalog: Catalog | None = None) -> None:
        self.config = config if config is not None else SimConfig()
        self._catalog = catalog if catalog is not None else Catalog.load()
        self._lock = threading.Lock()
        self._prefixes = WarmPrefixes()
        self._faults: list[_QueuedFault] = []
        self._served: Counter[str] = Counter()
        self._fired: Counter[str] = Counter()
        self._records: deque[RecordedRequest] = deque(maxlen=self.config.record_limit)
        self._ids = 0
        self.clock: Callable[[], float] = time.monotonic
        self._pacer = self._new_pacer()
        self._model_pacers = self._new_model_pacers()
        self._draws = self._new_draws()

    def _new_draws(self) -> FaultDraws:
        faults = self.config.faults
        return FaultDraws(
            faults, faults.seed if faults.seed is not None else f"{self.config.seed}:faults"
        )

    def _new_pacer(self) -> Pacer:
        latency = self.config.latency
        return Pacer(latency, latency.seed if latency.seed is not None else self.config.seed)

    def _new_model_pacers(self) -> dict[str, Pacer]:
        return {
            model: Pacer(
                profile, profile.seed if profile.seed is not None else f"{self.config.seed}:{model}"
            )
            for model, profile in self.config.latency_by_model.items()
        }

    # --- control, from tests or /_sim routes -----------------------------------------------

    def inject(
        self, fault: Fault, times: int | None = 1, protocol: ProtocolName | None = None
    ) -> None:
        """Queue ``fault`` for the next ``times`` matching requests (``None``: until reset)."""
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for every request)")
        with self._lock:
            self._faults.append(_QueuedFault(fault, times, protocol))

    def reset(self) -> None:
        """Forget warm prefixes, queued faults, stats and records; restore clock and RNGs."""
        with self._lock:
            self._prefixes.clear()
            self._faults.clear()
            self._served.clear()
            self._fired.clear()
            self._records.clear()
            self._ids = 0
            self.clock = time.monotonic
            self._pacer = self._new_pacer()
            self._model_pacers = self._new_model_pacers()
            self._draws = self._new_draws()

    @property
    def stats(self) -> SimStats:
        with self._lock:
            return SimStats(dict(self._served), dict(self._fired))

    @property
    def requests(self) -> list[RecordedRequest]:
        """The requests received since the last reset, oldest first (bounded by config)."""
        with self._lock:
            return list(self._records)

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def cache_min_tokens(self, model: str) -> int:
        """The shortest prefix the simulated provider caches for ``model``."""
        if model in self.config.cache_min_tokens:
            return self.config.cache_min_tokens[model]
        entry = self._catalog.find(model)
        if entry is None or entry.prompt_cache_min_tokens is None:
            return self.config.default_cache_min_tokens
        return entry.prompt_cache_min_tokens

    # --- used by the protocol handlers -----------------------------------------------------

    def admit(
        self, protocol: ProtocolName, path: str, body: Mapping[str, Any], headers: Mapping[str, str]
    ) -> int:
        """Count and record a well-formed request; returns its number (for reply ids)."""
        with self._lock:
            self._served[protocol] += 1
            self._ids += 1
            if self._records.maxlen:
                kept = {k: v for k, v in headers.items() if k.lower() not in _SECRET_HEADERS}
                self._records.append(RecordedRequest(protocol, path, body, kept))
            return self._ids

    def take_fault(self, protocol: ProtocolName, header: str | None) -> Fault | None:
        """The fault for this request: the header's if any, else the next queued match,
        else one drawn from the config's fault profile (or none).

        Raises ``ValueError`` for a malformed header.
        """
        fault = Fault.parse(header) if header else None
        with self._lock:
            if fault is None:
                fault = self._dequeue(protocol)
            if fault is None:
                fault = self._draws.draw()
            if fault is not None:
                self._fired[fault.kind] += 1
        return fault

    def _dequeue(self, protocol: ProtocolName) -> Fault | None:
        for index, queued in enumerate(self._faults):
            if queued.protocol not in (None, protocol):
                continue
            if queued.remaining is not None:
                queued.remaining -= 1
                if queued.remaining == 0:
                    del self._faults[index]
            return queued.fault
        return None

    def prompt_usage(
        self, protocol: ProtocolName, model: str, segments: Sequence[Segment], *, explicit: bool
    ) -> PromptUsage:
        minimum = self.cache_min_tokens(model)
        with self._lock:
            now = self.clock()
            if explicit:
                return self._prefixes.explicit(
                    protocol, model, segments, min_tokens=minimum, now=now
                )
            return self._prefixes.automatic(
                protocol,
                model,
                segments,
                min_tokens=minimum,
                now=now,
                ttl_s=self.config.implicit_cache_ttl_s,
            )

    def reply(self, call: SimCall) -> Reply:
        """The reply to ``call``: a tool call, JSON by its schema, or words (see
        :mod:`helios.sim.tools`), all seeded by the prompt and the config's seed."""
        seed = self.config.seed
        planned = planned_reply(
            call.segments,
            offer=call.tools,
            after_tool_result=call.after_tool_result,
            response_schema=call.response_schema,
            max_tokens=call.max_tokens,
            stop=call.stop,
            seed=seed,
        )
        if planned is not None:
            return planned
        return reply_for(
            call.segments,
            words=self.config.reply_tokens,
            max_tokens=call.max_tokens,
            stop=call.stop,
            seed=seed,
        )

    def pacing(self, chunks: int, model: str | None = None) -> Pacing:
        """Delays for a reply of ``chunks`` pieces from ``model`` (its own profile, if any)."""
        with self._lock:
            pacer = self._model_pacers.get(model, self._pacer) if model else self._pacer
            return pacer.pacing(chunks)
