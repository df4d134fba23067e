"""The one percentile Helios reports: every p50/p95/p99 in metrics, monitors, analyses and
benchmarks comes from :func:`percentile`.

The definition is linear interpolation between closest ranks, the one numpy uses by
default (``numpy.percentile``/``numpy.quantile`` with ``method="linear"``), R's type 7 and
``statistics.quantiles(method="inclusive")``: the ``q`` quantile of ``n`` sorted values sits
at position ``(n - 1) * q``, between the two values around it. It never invents a value
outside the sample, and p50 is the median (``statistics.median`` gives the same number, so
plain medians keep using the standard library).

Pure Python, so the ground floor needs no optional extra; the interpolation is written the
way numpy writes it (from the upper value when the weight is at least a half), so the
results are equal to numpy's to the last bit (``tests/test_percentiles.py``), not merely
close.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q`` quantile of ``values`` (``q`` from 0 to 1: 0.99 for p99); ``None`` when
    there are no values.

    ``q`` is a fraction, not a percentage: 99 raises :class:`ValueError` instead of
    quietly answering the maximum.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be a fraction from 0 to 1, got {q!r}")
    ordered = sorted(values)
    if not ordered:
        return None
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    if low >= len(ordered) - 1:
        return float(ordered[-1])
    below, above = ordered[low], ordered[low + 1]
    weight = position - low
    # numpy's lerp: interpolating from the nearer end keeps the result monotonic in q and
    # exactly equal to the upper value at weight 1.
    if weight >= 0.5:
        return float(above - (above - below) * (1.0 - weight))
    return float(below + (above - below) * weight)
