"""The server's cache manager on ``/metrics``, read at scrape time.

The manager counts, per layer, what this process's cache did: lookups (the engine's and the
cache API's, ``/api/v1/helios/cache/lookup``), store errors, writes, tokens and dollars
saved, recent lookup times. This collector turns a snapshot of them into Prometheus samples
whenever ``/metrics`` is scraped, so the hot path pays nothing for it.

These families are named ``helios_cache_manager_*`` because they mean something else than
the ledger's ``helios_cache_lookups_total``: that one counts the model calls of every
process recording into the ledger (per layer and persona), this one what this process's
cache manager saw, cache API clients included and other processes left out. Entry counts
need a round trip to each store and stay on the cache API's ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from helios.cache.manager import CacheManager

_COUNTERS = (
    ("errors", "helios_cache_manager_errors", "Store failures the layer turned into misses."),
    ("stores", "helios_cache_manager_writes", "Entries written to the layer."),
    (
        "tokens_saved",
        "helios_cache_manager_tokens_saved",
        "Tokens not billed thanks to the layer.",
    ),
    (
        "cost_saved_usd",
        "helios_cache_manager_saved_usd",
        "Dollars the layer saved, at catalogue prices.",
    ),
)
_LOOKUPS = (
    "helios_cache_manager_lookups",
    "Lookups that reached the layer in this process, by result (hit, miss; L1: hit when "
    "the prompt prefix was warm).",
)
_LATENCY = (
    "helios_cache_manager_lookup_duration_seconds",
    "Lookup time of the layer over its recent lookups, by quantile (0.5, 0.99).",
)


class CacheCollector(Collector):
    """Samples of whichever manager ``current()`` returns (none while there is none)."""

    def __init__(self, current: Callable[[], CacheManager | None]) -> None:
        self.current = current

    def describe(self) -> Iterator[Metric]:
        """The families, without samples: the registry checks their names are unique."""
        yield CounterMetricFamily(*_LOOKUPS, labels=["layer", "result"])
        for _, name, documentation in _COUNTERS:
            yield CounterMetricFamily(name, documentation, labels=["layer"])
        yield GaugeMetricFamily(*_LATENCY, labels=["layer", "quantile"])

    def collect(self) -> Iterator[Metric]:
        manager = self.current()
        if manager is None:
            return
        layers = manager.snapshot()["layers"]
        lookups = CounterMetricFamily(*_LOOKUPS, labels=["layer", "result"])
        for layer, values in layers.items():
            lookups.add_metric([layer, "hit"], float(values["hits"]))
            lookups.add_metric([layer, "miss"], float(values["lookups"] - values["hits"]))
        yield lookups
        for field, name, documentation in _COUNTERS:
            family = CounterMetricFamily(name, documentation, labels=["layer"])
            for layer, values in layers.items():
                family.add_metric([layer], float(values[field]))
            yield family
        latency = GaugeMetricFamily(*_LATENCY, labels=["layer", "quantile"])
        for layer, values in layers.items():
            for quantile, field in (("0.5", "lookup_ms_p50"), ("0.99", "lookup_ms_p99")):
                if values[field] is not None:
                    latency.add_metric([layer, quantile], float(values[field]) / 1000)
        yield latency
