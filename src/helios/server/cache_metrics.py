"""The cache manager's counters on ``/metrics``, read at scrape time.

The manager keeps its own counters (per layer: lookups, hits, errors, stores, tokens and
dollars saved, recent lookup times); this collector turns a snapshot of them into
Prometheus samples whenever ``/metrics`` is scraped, so the hot path pays nothing for it.
Entry counts need a round trip to each store and stay on the cache API's ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

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
