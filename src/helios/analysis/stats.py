"""The numbers behind ledger analysis: sample descriptions and two-sample comparisons.

numpy and scipy do the statistics (Welch's t-test, the bootstrap) and
:func:`helios.percentiles.percentile` the percentiles, as everywhere else; this module
only decides what is defined for a sample and words the outcome. Undefined values (the sd
of one value, a t-test on constant samples) are ``None``, never NaN.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from helios.errors import MissingDependency
from helios.percentiles import percentile

try:
    import numpy as np
    from scipy import stats as scipy_stats  # type: ignore[import-untyped]
except ImportError as exc:  # pragma: no cover - the analysis extra is missing
    raise MissingDependency(exc.name or "scipy", "analysis", "ledger analysis") from None

MIN_SAMPLES = 5
"""Fewer tasks than this in an arm and a comparison refuses to conclude."""
ALPHA = 0.05
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True, slots=True)
class Distribution:
    """One sample described: count, mean ± sample sd (ddof=1), median and 95th percentile."""

    n: int
    mean: float | None
    sd: float | None
    p50: float | None
    p95: float | None
    values: tuple[float, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean, "sd": self.sd, "p50": self.p50, "p95": self.p95}


def describe(values: Sequence[float]) -> Distribution:
    sample = tuple(float(v) for v in values if math.isfinite(v))
    if not sample:
        return Distribution(0, None, None, None, None, sample)
    data = np.asarray(sample)
    p50, p95 = percentile(sample, 0.5), percentile(sample, 0.95)
    sd = float(np.std(data, ddof=1)) if len(sample) > 1 else None
    return Distribution(len(sample), float(np.mean(data)), sd, p50, p95, sample)


@dataclass(frozen=True, slots=True)
class Difference:
    """One arm against the baseline on one metric (seconds; lower is better)."""

    metric: str
    arm: str
    baseline: str
    n: int
    baseline_n: int
    mean_difference_s: float | None
    """arm mean - baseline mean: negative means the arm is faster."""
    improvement_pct: float | None
    """(baseline mean - arm mean) / baseline mean x 100: positive means the arm is faster."""
    variance_change_pct: float | None
    """(arm variance - baseline variance) / baseline variance x 100."""
    p_value: float | None
    """Welch's t-test (unequal variances), two-sided."""
    ci_low_s: float | None
    ci_high_s: float | None
    """A bootstrap 95% confidence interval of ``mean_difference_s``."""
    significant: bool
    verdict: str

    @property
    def conclusion(self) -> str:
        """In two words: ``significant``, ``not significant``, ``too few tasks``, ``untestable``."""
        if min(self.n, self.baseline_n) < MIN_SAMPLES:
            return "too few tasks"
        if self.p_value is None:
            return "untestable"
        return "significant" if self.significant else "not significant"

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "arm": self.arm,
            "baseline": self.baseline,
            "n": self.n,
            "baseline_n": self.baseline_n,
            "mean_difference_s": self.mean_difference_s,
            "improvement_pct": self.improvement_pct,
            "variance_change_pct": self.variance_change_pct,
            "p_value": self.p_value,
            "ci95_s": None if self.ci_low_s is None else [self.ci_low_s, self.ci_high_s],
            "significant": self.significant,
            "conclusion": self.conclusion,
            "verdict": self.verdict,
        }


def difference(
    metric: str,
    arm: tuple[str, Distribution],
    baseline: tuple[str, Distribution],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Difference:
    """Compare ``arm`` with ``baseline``: effect size, Welch p-value, bootstrap CI, verdict."""
    (name, a), (base_name, b) = arm, baseline
    mean_diff = improvement = variance_change = p_value = low = high = None
    if a.mean is not None and b.mean is not None:
        mean_diff = a.mean - b.mean
        if b.mean != 0:
            improvement = (b.mean - a.mean) / b.mean * 100
    if a.sd is not None and b.sd is not None and b.sd > 0:
        variance_change = (a.sd**2 - b.sd**2) / b.sd**2 * 100
    if a.n >= 2 and b.n >= 2:
        p_value = welch_p_value(a.values, b.values)
        low, high = bootstrap_ci(a.values, b.values, resamples=resamples, seed=seed)
    significant = min(a.n, b.n) >= MIN_SAMPLES and p_value is not None and p_value < ALPHA
    return Difference(
        metric=metric,
        arm=name,
        baseline=base_name,
        n=a.n,
        baseline_n=b.n,
        mean_difference_s=mean_diff,
        improvement_pct=improvement,
        variance_change_pct=variance_change,
        p_value=p_value,
        ci_low_s=low,
        ci_high_s=high,
        significant=significant,
        verdict=_verdict(name, base_name, a.n, b.n, improvement, p_value),
    )


def welch_p_value(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided Welch's t-test p-value, or ``None`` where it is undefined (no variance)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant samples: scipy warns and returns NaN
        result = scipy_stats.ttest_ind(a, b, equal_var=False)
    return _finite(result.pvalue)


def bootstrap_ci(
    a: Sequence[float], b: Sequence[float], *, resamples: int, seed: int
) -> tuple[float | None, float | None]:
    """A 95% bootstrap CI of mean(a) - mean(b): BCa, or percentile where BCa is undefined."""

    def mean_difference(x: Any, y: Any, axis: int) -> Any:
        return np.mean(x, axis=axis) - np.mean(y, axis=axis)

    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # degenerate resamples: scipy warns, returns NaN
            result = scipy_stats.bootstrap(
                (np.asarray(a), np.asarray(b)),
                mean_difference,
                n_resamples=resamples,
                vectorized=True,
                method=method,
                rng=np.random.default_rng(seed),
            )
        low = _finite(result.confidence_interval.low)
        high = _finite(result.confidence_interval.high)
        if low is not None and high is not None:
            return low, high
    return None, None


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def format_p(p_value: float) -> str:
    return "p<0.001" if p_value < 0.001 else f"p={p_value:.3f}"


def _verdict(
    arm: str,
    baseline: str,
    n: int,
    baseline_n: int,
    improvement: float | None,
    p_value: float | None,
) -> str:
    sizes = f"n={n} vs {baseline_n}"
    if min(n, baseline_n) < MIN_SAMPLES:
        return f"too few tasks to conclude ({sizes}; at least {MIN_SAMPLES} per arm needed)"
    if p_value is None or improvement is None:
        return f"cannot test at {sizes}: neither arm varies"
    if p_value >= ALPHA:
        return f"no significant difference at {sizes} ({format_p(p_value)})"
    direction = "faster" if improvement > 0 else "slower"
    return (
        f"{arm} is {abs(improvement):.1f}% {direction} than {baseline} "
        f"({format_p(p_value)}, {sizes})"
    )
