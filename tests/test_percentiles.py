"""The one percentile: numpy's default definition, to the last bit, without numpy."""

from __future__ import annotations

import random
import statistics

import numpy as np
import pytest

from helios.percentiles import percentile


def samples(seed: int) -> list[list[float]]:
    rng = random.Random(seed)
    found = [[rng.gauss(0, 1) for _ in range(rng.randint(1, 300))] for _ in range(100)]
    found += [[rng.lognormvariate(0, 2) for _ in range(rng.randint(1, 50))] for _ in range(50)]
    # ties and integers, as latencies rounded to a clock tick are
    found += [[float(rng.randint(0, 5)) for _ in range(rng.randint(1, 40))] for _ in range(50)]
    return found


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_numpy_on_random_data(seed: int) -> None:
    rng = random.Random(seed)
    for values in samples(seed):
        for q in (0.0, 0.5, 0.95, 0.99, 1.0, rng.random(), rng.random()):
            assert percentile(values, q) == float(np.quantile(values, q)), (values, q)
        for p in (50, 90, 95, 99):
            assert percentile(values, p / 100) == float(np.percentile(values, p)), (values, p)


def test_median_and_inclusive_quantiles_agree() -> None:
    for values in samples(3):
        assert percentile(values, 0.5) == pytest.approx(statistics.median(values))
        if len(values) > 1:
            cuts = statistics.quantiles(values, n=100, method="inclusive")
            assert percentile(values, 0.99) == pytest.approx(cuts[98])


def test_interpolates_between_closest_ranks() -> None:
    assert percentile([], 0.5) is None
    assert percentile([4], 0.99) == 4.0
    assert percentile([3, 1, 2], 0.5) == 2.0
    assert percentile([1, 2, 3, 4], 0.5) == 2.5
    assert percentile(range(1, 101), 0.99) == pytest.approx(99.01)
    assert percentile((x for x in [10.0, 20.0]), 0.25) == 12.5  # any iterable, once


@pytest.mark.parametrize("q", [-0.1, 1.5, 99])
def test_a_percentage_is_refused(q: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        percentile([1.0, 2.0], q)
