"""What the response cache did for each persona, read from the ledger.

Every engine call records its ``cache_lookup`` events (one per layer consulted) and its
``persona_llm_run`` (which layer answered, what the hit saved in dollars and seconds), in
every process that shares the ledger. Summed per persona over a window, they are the
reference design's per-persona hit/miss tracking, across restarts and workers alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from helios.analysis.tasks import finite
from helios.ledger.events import CacheLookup, Event, PersonaLLMRun

NO_PERSONA = "-"
EVENT_TYPES = ("cache_lookup", "persona_llm_run")


@dataclass(slots=True)
class PersonaCacheUsage:
    """One persona's calls: how many the cache answered (by layer) and what that saved."""

    calls: int = 0
    hits: dict[str, int] = field(default_factory=dict)
    lookups: dict[str, int] = field(default_factory=dict)
    """Lookups per layer consulted (L2 for every call, L3 only where L2 missed)."""
    cost_saved_usd: float = 0.0
    unpriced_hits: int = 0
    """Hits whose saving has no known price: with every hit so, the saving is unknown."""
    time_saved_s: float = 0.0

    @property
    def misses(self) -> int:
        return self.calls - sum(self.hits.values())

    @property
    def hit_rate(self) -> float | None:
        return sum(self.hits.values()) / self.calls if self.calls else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "hits": sum(self.hits.values()),
            "misses": self.misses,
            "hit_rate": self.hit_rate,
            "hits_by_layer": dict(self.hits),
            "lookups_by_layer": dict(self.lookups),
            "cost_saved_usd": self.cost_saved_usd,
            "unpriced_hits": self.unpriced_hits,
            "time_saved_s": self.time_saved_s,
        }


def cache_usage_by_persona(events: Iterable[Event]) -> dict[str, PersonaCacheUsage]:
    """Per persona (``-`` for calls made without one), sorted by name."""
    usage: dict[str, PersonaCacheUsage] = {}
    for event in events:
        if isinstance(event, CacheLookup):
            persona = usage.setdefault(event.persona or NO_PERSONA, PersonaCacheUsage())
            persona.lookups[event.layer] = persona.lookups.get(event.layer, 0) + 1
        elif isinstance(event, PersonaLLMRun):
            persona = usage.setdefault(event.persona or NO_PERSONA, PersonaCacheUsage())
            persona.calls += 1
            if event.cache_layer is not None:
                layer = event.cache_layer
                persona.hits[layer] = persona.hits.get(layer, 0) + 1
                persona.cost_saved_usd += finite(event.cost_saved_usd) or 0.0
                persona.unpriced_hits += event.cost_saved_usd is None
                persona.time_saved_s += finite(event.time_saved_s) or 0.0
    return dict(sorted(usage.items()))
