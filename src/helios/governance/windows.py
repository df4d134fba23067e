"""Window arithmetic: what a window has used, whether a charge fits, when room frees up.

Pure functions over :class:`WindowState`, shared by the memory and SQLite backends (the
Redis backend does the same in Lua, see ``state/redis.py``).

Time source. Windows outlive processes (a 5-hour session spans restarts, and several hosts
share one budget), so every timestamp is **wall-clock** seconds since the epoch from an
injectable clock; monotonic time restarts at an arbitrary origin on every boot and cannot
be stored. Wall clocks can jump backwards (NTP steps, a VM restored), so:

- elapsed time is never negative: a session whose start lies in the future is treated as
  started *now* (its start is moved back to now, so it can never last longer than
  ``length_s`` from the moment it is observed);
- sliding usage stamped in the future simply stays in the window until the clock passes it
  (it is counted, never dropped early: a jump can only make the governor stricter).

Kinds. A *session* window starts at the first request and resets ``length_s`` later; the
next request after that starts a new session. A *sliding* window counts the usage of the
last ``length_s`` seconds, kept in at most :data:`SLIDING_BUCKETS` buckets: each usage is
filed under the *end* of its bucket, so it is forgotten at most one bucket late (never
early) and the log stays small whatever the traffic.

Reservations hold room until they are committed (the actual usage replaces them) or
released; one never settled (a crashed process) is dropped after ``stale_after_s``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from helios.config.governor import WindowKind

SLIDING_BUCKETS = 300
_EPSILON = 1e-9  # float sums of many small amounts must not fail an exact fit


@dataclass(frozen=True)
class WindowSpec:
    """A window as the backends see it: ``key`` is ``<account>:<window>``."""

    key: str
    kind: WindowKind
    length_s: float

    @property
    def bucket_s(self) -> float:
        return self.length_s / SLIDING_BUCKETS


@dataclass(frozen=True)
class Charge:
    """``amount`` units against one window whose usable limit (after priority) is ``limit``."""

    window: WindowSpec
    amount: float
    limit: float = math.inf


@dataclass(frozen=True)
class WindowUsage:
    key: str
    used: float
    reserved: float
    resets_at: float | None
    """Session: when it ends (``None``: no session running). Sliding: when the oldest usage
    still counted is forgotten (``None``: nothing counted)."""
    frees_at: float | None = None
    """Only for a charge that did not fit: when enough has been forgotten for it to fit
    (assuming the reservations now held stay held); ``None``: waiting cannot help."""
    fits: bool = True


@dataclass(frozen=True)
class ReserveResult:
    ok: bool
    now: float
    windows: tuple[WindowUsage, ...]

    @property
    def blocked(self) -> tuple[int, ...]:
        return tuple(i for i, window in enumerate(self.windows) if not window.fits)


@dataclass
class WindowState:
    start: float | None = None
    used: float = 0.0
    log: dict[float, float] = field(default_factory=dict)
    reservations: dict[str, tuple[float, float]] = field(default_factory=dict)
    """reservation id -> (amount, reserved at)"""

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "used": self.used,
            "log": [[at, amount] for at, amount in self.log.items()],
            "reservations": {rid: list(value) for rid, value in self.reservations.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WindowState:
        return cls(
            start=data["start"],
            used=float(data["used"]),
            log={float(at): float(amount) for at, amount in data["log"]},
            reservations={
                rid: (float(amount), float(at))
                for rid, (amount, at) in data["reservations"].items()
            },
        )


def refresh(
    spec: WindowSpec, state: WindowState, now: float, stale_after_s: float, *, begin: bool
) -> None:
    """Bring ``state`` up to ``now``; ``begin`` starts a session if none is running."""
    for rid, (_, at) in list(state.reservations.items()):
        if now - at > stale_after_s:
            del state.reservations[rid]
    if spec.kind == "session":
        if state.start is not None and state.start > now:
            state.start = now  # the clock went backwards: started now, never negative elapsed
        if state.start is not None and now >= state.start + spec.length_s:
            state.start, state.used = None, 0.0
        if state.start is None and begin:
            state.start, state.used = now, 0.0
    else:
        for at in [at for at in state.log if at + spec.length_s <= now]:
            del state.log[at]


def used(spec: WindowSpec, state: WindowState) -> float:
    return state.used if spec.kind == "session" else sum(state.log.values())


def reserved(state: WindowState) -> float:
    return sum(amount for amount, _ in state.reservations.values())


def resets_at(spec: WindowSpec, state: WindowState) -> float | None:
    if spec.kind == "session":
        return None if state.start is None else state.start + spec.length_s
    return min(state.log) + spec.length_s if state.log else None


def frees_at(spec: WindowSpec, state: WindowState, amount: float, limit: float) -> float | None:
    held = reserved(state) + amount
    if held > limit + _EPSILON:
        return None  # even with all usage forgotten it would not fit
    if spec.kind == "session":
        return resets_at(spec, state)
    need = used(spec, state) + held - limit
    freed = 0.0
    for at in sorted(state.log):
        freed += state.log[at]
        if freed + _EPSILON >= need:
            return at + spec.length_s
    return None


def add_usage(spec: WindowSpec, state: WindowState, amount: float, now: float) -> None:
    if spec.kind == "session":
        state.used += amount
        return
    bucket = math.ceil(now / spec.bucket_s) * spec.bucket_s
    state.log[bucket] = state.log.get(bucket, 0.0) + amount


def snapshot(spec: WindowSpec, state: WindowState) -> WindowUsage:
    return WindowUsage(spec.key, used(spec, state), reserved(state), resets_at(spec, state))


def try_reserve(
    states: Sequence[WindowState],
    charges: Sequence[Charge],
    reservation_id: str,
    now: float,
    stale_after_s: float,
) -> ReserveResult:
    """Reserve on every window or on none; ``states[i]`` belongs to ``charges[i]``."""
    usages: list[WindowUsage] = []
    for state, charge in zip(states, charges, strict=True):
        spec = charge.window
        refresh(spec, state, now, stale_after_s, begin=True)
        total = used(spec, state) + reserved(state) + charge.amount
        fits = charge.amount <= 0 or total <= charge.limit + _EPSILON
        usage = snapshot(spec, state)
        if not fits:
            usage = WindowUsage(
                usage.key,
                usage.used,
                usage.reserved,
                usage.resets_at,
                frees_at(spec, state, charge.amount, charge.limit),
                fits=False,
            )
        usages.append(usage)
    ok = all(usage.fits for usage in usages)
    if ok:
        for state, charge in zip(states, charges, strict=True):
            state.reservations[reservation_id] = (charge.amount, now)
        usages = [snapshot(c.window, s) for s, c in zip(states, charges, strict=True)]
    return ReserveResult(ok, now, tuple(usages))


def settle(
    states: Sequence[WindowState],
    charges: Sequence[Charge],
    reservation_id: str,
    now: float,
    stale_after_s: float,
) -> None:
    """Drop the reservation and record each charge's ``amount`` as used (0 = a release)."""
    for state, charge in zip(states, charges, strict=True):
        refresh(charge.window, state, now, stale_after_s, begin=charge.amount > 0)
        state.reservations.pop(reservation_id, None)
        if charge.amount > 0:
            add_usage(charge.window, state, charge.amount, now)
