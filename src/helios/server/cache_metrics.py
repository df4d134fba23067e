"""The cache manager's counters on ``/metrics``, read at scrape time.

The manager keeps its own counters (per layer: lookups, hits, errors, stores, tokens and
dollars saved, recent lookup times; per persona: lookups, hits by layer, dollars and seconds
saved); this collector turns a snapshot of them into
Prometheus samples whenever ``/metrics`` is scraped, so the hot path pays nothing for it.
Entry counts need a round trip to each store and stay on the cache API's ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from helios.cache.manager import CacheManager

_COUNTERS = (
    ("lookups", "helios_cache_lookups", "Cache lookups that reached the layer."),
    ("hits", "helios_cache_hits", "Lookups the layer answered (L1: the prefix was warm)."),
    ("errors", "helios_cache_errors", "Store failures the layer turned into misses."),
    ("stores", "helios_cache_stores", "Entries written to the layer."),
    ("tokens_saved", "helios_cache_tokens_saved", "Tokens not billed thanks to the layer."),
    ("cost_saved_usd", "helios_cache_cost_saved_usd", "Dollars saved, at catalogue prices."),
)


class CacheCollector(Collector):
    """Samples of whichever manager ``current()`` returns (none while there is none)."""

    def __init__(self, current: Callable[[], CacheManager | None]) -> None:
        self.current = current

    def collect(self) -> Iterator[Metric]:
        manager = self.current()
        if manager is None:
            return
        layers = manager.snapshot()["layers"]
        for field, name, documentation in _COUNTERS:
            family = CounterMetricFamily(name, documentation, labels=["layer"])
            for layer, values in layers.items():
                family.add_metric([layer], float(values[field]))
            yield family
        latency = GaugeMetricFamily(
            "helios_cache_lookup_ms",
            "Lookup time of the layer over its recent lookups, in milliseconds.",
            labels=["layer", "quantile"],
        )
        for layer, values in layers.items():
            for quantile, field in (("0.5", "lookup_ms_p50"), ("0.99", "lookup_ms_p99")):
                if values[field] is not None:
                    latency.add_metric([layer, quantile], float(values[field]))
        yield latency
        yield from _persona_families(manager.snapshot()["personas"])


def _persona_families(personas: dict[str, dict[str, Any]]) -> Iterator[Metric]:
    """Per persona: lookups, hits by the layer that answered, and what the hits saved."""
    lookups = CounterMetricFamily(
        "helios_cache_persona_lookups", "Cache lookups by persona.", labels=["persona"]
    )
    hits = CounterMetricFamily(
        "helios_cache_persona_hits",
        "Lookups answered from the cache, by persona and answering layer.",
        labels=["persona", "layer"],
    )
    dollars = CounterMetricFamily(
        "helios_cache_persona_cost_saved_usd",
        "Dollars the persona's cache hits saved, at catalogue prices.",
        labels=["persona"],
    )
    seconds = CounterMetricFamily(
        "helios_cache_persona_time_saved_seconds",
        "Seconds of provider time the persona's cache hits spared (the original calls').",
        labels=["persona"],
    )
    for persona, values in personas.items():
        lookups.add_metric([persona], float(values["lookups"]))
        for layer, count in values["hits_by_layer"].items():
            hits.add_metric([persona, layer], float(count))
        dollars.add_metric([persona], float(values["cost_saved_usd"]))
        seconds.add_metric([persona], float(values["time_saved_s"]))
    yield from (lookups, hits, dollars, seconds)
