"""What the cache manager reports: layers, one lookup's waterfall, L1's plan, health.

Plain data, shared by the manager, the engine (which reads a lookup to record it), the REST
API and the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from helios.cache.exact import CachedReply
from helios.cache.prompt import PlannedRequest
from helios.messages import Request

Layer = Literal["L1", "L2", "L3"]
LAYERS: tuple[Layer, ...] = ("L1", "L2", "L3")
API_LAYER_NAMES: dict[Layer, str] = {
    "L1": "L1_CLAUDE_NATIVE",
    "L2": "L2_REDIS_EXACT",
    "L3": "L3_SEMANTIC",
}
"""The reference design's names, kept for API compatibility: ``L2_REDIS_EXACT`` is the
exact layer whichever backend (memory, SQLite, Redis) holds it."""
HealthStatus = Literal["ok", "degraded", "disabled"]


@dataclass(frozen=True, slots=True)
class L1Report:
    """What the provider's prompt cache will do for this request, known before the call."""

    applicable: bool
    warm: bool
    prefix_hash: str | None
    prefix_tokens: int
    expected_savings_usd: float
    reason: str


@dataclass(frozen=True, slots=True)
class PlannedCall:
    """L1's part of one provider call: what to send (``None`` without a planner) and what
    the provider's prompt cache is expected to do with it."""

    planned: PlannedRequest | None
    report: L1Report

    def request_for(self, request: Request) -> Request:
        return self.planned.request if self.planned is not None else request


@dataclass(frozen=True, slots=True)
class LayerReport:
    enabled: bool
    checked: bool
    hit: bool
    time_ms: float
    reason: str
    similarity: float | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class CacheLookup:
    """One waterfall lookup. ``reply`` is set on a hit; ``key`` is the L2 key to store under."""

    reply: CachedReply | None
    layer: Layer | None
    confidence: float | None
    key: str | None
    provider: str
    model: str
    """Where the request's spec resolved: a miss stores its reply under the same."""
    l1: L1Report
    l2: LayerReport
    l3: LayerReport
    lookup_time_ms: float
    tokens_saved: int
    cost_saved_usd: float

    @property
    def hit(self) -> bool:
        return self.reply is not None


@dataclass(frozen=True, slots=True)
class LayerHealth:
    status: HealthStatus
    backend: str | None
    detail: str
    breaker: str | None = None
    """The circuit of a network store after the probe (``closed``, ``open``,
    ``half-open``); ``None`` for a local one."""


@dataclass(frozen=True, slots=True)
class CacheHealth:
    layers: dict[Layer, LayerHealth]

    @property
    def status(self) -> HealthStatus:
        """``degraded`` when any enabled layer is; ``ok`` otherwise (disabled layers count as
        a choice, not a fault)."""
        states = {health.status for health in self.layers.values()}
        return "degraded" if "degraded" in states else "ok"


def l1_off(reason: str) -> L1Report:
    return L1Report(False, False, None, 0, 0.0, reason)
