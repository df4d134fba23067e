"""PNG charts of ledger analyses, drawn on a bare matplotlib ``Figure`` with the Agg
canvas: no pyplot, no GUI backend, no global state."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from helios.analysis.comparison import Comparison
from helios.analysis.stats import Distribution
from helios.analysis.summary import Summary
from helios.analysis.tasks import TOTAL
from helios.errors import InputError, MissingDependency

try:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
except ImportError as exc:  # pragma: no cover - the analysis extra is missing
    raise MissingDependency(exc.name or "matplotlib", "analysis", "ledger plots") from None


def plot_comparison(comparison: Comparison, path: Path) -> None:
    """Total task time per arm: box plots with each task as a dot and the mean marked."""
    series = [
        (f"{arm.label}\n{_caption(arm.metrics[TOTAL])}", arm.metrics[TOTAL])
        for arm in comparison.arms
        if TOTAL in arm.metrics
    ]
    title = f"Total task time by {comparison.by}"
    if comparison.baseline is not None:
        title += f" (baseline: {comparison.baseline})"
    _save(_boxes(title, series, "arm"), path)


def plot_summary(summary: Summary, path: Path) -> None:
    """Latency per stage and in total: box plots with each task as a dot and the mean marked."""
    series = [(f"{name}\n{_caption(dist)}", dist) for name, dist in summary.latency.items()]
    _save(_boxes(f"Latency per stage ({summary.tasks} tasks)", series, "stage"), path)


def _caption(dist: Distribution) -> str:
    if dist.mean is None:
        return "n=0"
    return f"n={dist.n}, mean {dist.mean:.2f} s"


def _boxes(title: str, series: Sequence[tuple[str, Distribution]], xlabel: str) -> Figure:
    figure = Figure(figsize=(max(6.0, 1.6 * len(series) + 2), 4.8), layout="constrained")
    axes = figure.add_subplot()
    drawn = [(name, dist) for name, dist in series if dist.n > 0]
    if drawn:
        positions = list(range(1, len(drawn) + 1))
        axes.boxplot(
            [dist.values for _, dist in drawn],
            positions=positions,
            tick_labels=[name for name, _ in drawn],
            showfliers=False,
            widths=0.5,
        )
        for position, (_, dist) in zip(positions, drawn, strict=True):
            offsets = [position + _jitter(i) for i in range(dist.n)]
            axes.scatter(offsets, dist.values, s=10, alpha=0.4, color="tab:blue", zorder=2)
            mean = dist.mean or 0.0  # drawn series are non-empty, so the mean is defined
            axes.scatter([position], [mean], marker="D", color="tab:red", zorder=3)
        axes.scatter([], [], marker="D", color="tab:red", label="mean")
        axes.legend(loc="best")
        axes.set_ylim(bottom=0)
    else:
        axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("seconds")
    axes.grid(axis="y", alpha=0.3)
    return figure


def _jitter(index: int) -> float:
    # Deterministic spread (a low-discrepancy sequence), so a chart is reproducible.
    return ((index * 0.618_033_988_75) % 1.0 - 0.5) * 0.3


def _save(figure: Figure, path: Path) -> None:
    FigureCanvasAgg(figure)
    try:
        figure.savefig(path, format="png", dpi=100)
    except OSError as exc:
        raise InputError(f"--plot {path}: cannot write it ({exc.strerror or exc})") from None
