"""Every metric family ``helios serve`` can export, and the sample names each one writes."""

from __future__ import annotations

from prometheus_client.core import Metric

from helios.ops.metrics import HeliosMetrics
from helios.server.budget_metrics import BudgetCollector
from helios.server.cache_metrics import CacheCollector

SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}


def exported_families() -> list[Metric]:
    """The families of the ledger's metrics and of the collectors the server adds (the
    latter as they describe themselves: they have samples only with a cache or budgets).
    Registering them all in one registry proves no two share a name."""
    metrics = HeliosMetrics()
    collectors = (CacheCollector(lambda: None), BudgetCollector(lambda: None))
    for collector in collectors:
        metrics.registry.register(collector)  # raises on a name already taken
    families = list(metrics.registry.collect())  # the collectors add nothing: no cache
    for collector in collectors:
        families.extend(collector.describe())
    return families


def sample_names(families: list[Metric]) -> set[str]:
    """The names a PromQL query may use: ``name_total``, ``name_bucket``, ..."""
    return {family.name + suffix for family in families for suffix in SUFFIXES[family.type]}
