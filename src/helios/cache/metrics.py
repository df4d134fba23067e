"""The cache manager's counters: per layer, and per persona across the answering layers."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from helios.cache.reports import Layer
from helios.percentiles import percentile

TIMING_SAMPLES = 2048


@dataclass(slots=True)
class LayerMetrics:
    lookups: int = 0
    hits: int = 0
    errors: int = 0
    stores: int = 0
    tokens_saved: int = 0
    cost_saved_usd: float = 0.0
    times_ms: deque[float] = field(default_factory=lambda: deque(maxlen=TIMING_SAMPLES))

    @property
    def hit_rate(self) -> float:
        return self.hits / self.lookups if self.lookups else 0.0

    def snapshot(self) -> dict[str, Any]:
        return {
            "lookups": self.lookups,
            "hits": self.hits,
            "hit_rate": self.hit_rate,
            "errors": self.errors,
            "stores": self.stores,
            "tokens_saved": self.tokens_saved,
            "cost_saved_usd": self.cost_saved_usd,
            "lookup_ms_p50": percentile(self.times_ms, 0.5),
            "lookup_ms_p99": percentile(self.times_ms, 0.99),
        }


@dataclass(slots=True)
class PersonaMetrics:
    """One persona's lookups in this process: what each answering layer served and saved.
    A lookup is a hit (by the layer that answered) or a miss (the provider answered)."""

    lookups: int = 0
    hits: dict[Layer, int] = field(default_factory=dict)
    tokens_saved: int = 0
    cost_saved_usd: float = 0.0
    time_saved_s: float = 0.0

    @property
    def misses(self) -> int:
        return self.lookups - sum(self.hits.values())

    def snapshot(self) -> dict[str, Any]:
        hits = sum(self.hits.values())
        return {
            "lookups": self.lookups,
            "hits": hits,
            "misses": self.misses,
            "hit_rate": hits / self.lookups if self.lookups else 0.0,
            "hits_by_layer": dict(self.hits),
            "tokens_saved": self.tokens_saved,
            "cost_saved_usd": self.cost_saved_usd,
            "time_saved_s": self.time_saved_s,
        }
