"""How ``helios ledger`` shows its results: rich tables, seconds in ms or s as they read best,
moments in ISO 8601, unknown costs as ``unknown``."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from helios.analysis.tasks import label
from helios.cli.formatting import UNKNOWN, moment, print_table, usd, usd_total

if TYPE_CHECKING:
    from helios.analysis.comparison import Comparison
    from helios.analysis.stats import Difference, Distribution
    from helios.analysis.summary import Summary, TaskBreakdown

TIMELINE_WIDTH = 24
NONE = "—"
_CONCLUSION_STYLE = {"significant": "green", "not significant": "yellow"}


def seconds(value: float | None) -> str:
    """``850 ms`` below a second, ``3.21 s`` above."""
    if value is None:
        return NONE
    return f"{value * 1000:.0f} ms" if abs(value) < 1 else f"{value:.2f} s"


def mean_sd(dist: Distribution) -> str:
    """``850 ± 120 ms`` or ``3.21 ± 0.40 s``: both numbers in the mean's unit."""
    if dist.mean is None:
        return NONE
    if dist.sd is None:
        return seconds(dist.mean)
    if abs(dist.mean) < 1:
        return f"{dist.mean * 1000:.0f} ± {dist.sd * 1000:.0f} ms"
    return f"{dist.mean:.2f} ± {dist.sd:.2f} s"


def percent(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return NONE
    return f"{value:+.1f}%" if signed else f"{value * 100:.1f}%"


def when(timestamp: float | None) -> str:
    return moment(timestamp, missing=NONE)


def ratio(part: int, whole: int) -> str:
    """``17/18 (94.4%)``, or ``—`` over nothing."""
    return f"{part}/{whole} ({percent(part / whole)})" if whole else NONE


def _table(title: str, columns: list[str], *, left: int = 1) -> Table:
    table = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index < left else "right")
    return table


# -- summary ------------------------------------------------------------------------------
def print_summary(summary: Summary, console: Console) -> None:
    succeeded = (
        f"{summary.succeeded}/{summary.rated} succeeded ({percent(summary.success_rate)})"
        if summary.rated
        else "none ended"
    )
    if summary.abandoned:
        succeeded += (
            f" · [red]{summary.abandoned} abandoned[/] (no end within"
            f" {_duration(summary.abandoned_after_s)} of the start)"
        )
    if summary.cancelled:
        succeeded += f" · [yellow]{summary.cancelled} cancelled[/]"
    if summary.running:
        succeeded += f" · {summary.running} running"
    succeeded += " · " + _gate(summary.accepted, summary.judged, summary.rated - summary.abandoned)
    console.print(
        f"[bold]{summary.tasks} tasks[/] · {succeeded} · "
        f"{when(summary.first_timestamp)} → {when(summary.last_timestamp)}"
    )
    latency = _table("Latency per stage", ["stage", "n", "mean ± sd", "p50", "p95"])
    for name, dist in summary.latency.items():
        latency.add_row(
            escape(name), str(dist.n), mean_sd(dist), seconds(dist.p50), seconds(dist.p95)
        )
    print_table(latency, console)
    if summary.ttft:
        ttft = _table("Time to first token", ["persona", "n", "mean", "p50"])
        for persona, dist in summary.ttft.items():
            ttft.add_row(escape(persona), str(dist.n), seconds(dist.mean), seconds(dist.p50))
        print_table(ttft, console)
    if summary.cache:
        cache = _table("Response cache", ["layer", "lookups", "hits", "hit rate"])
        for layer, rate in summary.cache.items():
            cache.add_row(escape(layer), str(rate.lookups), str(rate.hits), percent(rate.rate))
        print_table(cache, console)
    else:
        console.print("response cache: no lookups recorded", style="dim")
    unpriced = summary.unpriced_calls
    unpriced_note = f" · {unpriced} calls without a price" if unpriced else ""
    cost = usd_total(summary.cost_usd, unpriced=unpriced, calls=summary.calls)
    saved = usd(summary.saved_usd) if summary.cost_known else UNKNOWN
    console.print(
        f"tokens in {summary.input_tokens:,} / out {summary.output_tokens:,} · "
        f"cost {cost} (saved {saved}){unpriced_note}"
    )
    console.print(
        f"async thesis fallbacks: {summary.async_fallbacks} of {summary.async_tasks} tasks "
        f"({percent(summary.async_fallback_rate)}) · second pass: {summary.second_pass_tasks} "
        f"of {summary.tasks} tasks ({percent(summary.second_pass_rate)})"
    )
    errors = " · ".join(f"{escape(kind)} {count}" for kind, count in summary.errors.items())
    console.print(f"errors: {errors or 'none'}")


# -- compare ------------------------------------------------------------------------------
def print_comparison(comparison: Comparison, console: Console) -> None:
    baseline = comparison.baseline if comparison.baseline is not None else NONE
    console.print(f"[bold]compare by {escape(comparison.by)}[/] · baseline: {escape(baseline)}")
    metrics = list(comparison.arms[0].metrics) if comparison.arms else []
    arms = _table("Arms (mean ± sd)", ["arm", "tasks", "succeeded", "accepted", *metrics])
    for arm in comparison.arms:
        ended = arm.outcomes
        arms.add_row(
            escape(arm.label),
            str(arm.tasks),
            ratio(ended.succeeded, ended.rated),
            ratio(ended.accepted, ended.judged),
            *(mean_sd(arm.metrics[m]) for m in metrics),
        )
    print_table(arms, console)
    if comparison.differences:
        columns = ["arm", "metric", "Δ mean", "faster by", "variance", "p (Welch)", "95% CI of Δ"]
        table = _table(f"Against {baseline}", [*columns, "result"], left=2)
        for d in comparison.differences:
            table.add_row(*_difference_row(d))
        print_table(table, console)
    for verdict in comparison.verdicts:
        console.print(escape(verdict), style="bold")
    for note in comparison.notes:
        console.print(escape(note), style="dim")


def _signed(value: float | None) -> str:
    return seconds(value) if value is None or value <= 0 else "+" + seconds(value)


def _difference_row(d: Difference) -> list[str]:
    ci = NONE if d.ci_low_s is None else f"{seconds(d.ci_low_s)} … {seconds(d.ci_high_s)}"
    style = _CONCLUSION_STYLE.get(d.conclusion, "dim")
    return [
        escape(d.arm),
        escape(d.metric),
        _signed(d.mean_difference_s),
        percent(d.improvement_pct, signed=True),
        percent(d.variance_change_pct, signed=True),
        NONE if d.p_value is None else f"{d.p_value:.3f}" if d.p_value >= 0.001 else "<0.001",
        ci,
        f"[{style}]{d.conclusion}[/]",
    ]


# -- last task ----------------------------------------------------------------------------
def print_breakdown(task: TaskBreakdown, console: Console) -> None:
    flags = ", ".join(f"{escape(k)}={escape(label(v))}" for k, v in sorted(task.flags.items()))
    goal = f' · "{escape(task.goal)}"' if task.goal else ""
    console.print(f"[bold]task {escape(task.task_id)}[/]{goal} · started {when(task.started_at)}")
    if flags:
        console.print(f"flags: {flags}", style="dim")
    span = max([task.total_s or 0.0, *(s.start_s + s.duration_s for s in task.stages)], default=0.0)
    columns = ["stage", "pass", "start", "duration", "TTFT", "model", "cache", "timeline"]
    table = _table("Stages", columns)
    for column in table.columns[5:]:
        column.justify = "left"
    for stage in task.stages:
        model = f"{stage.provider}:{stage.model}" if stage.model else NONE
        table.add_row(
            escape(stage.stage),
            str(stage.pass_number),
            seconds(stage.start_s),
            seconds(stage.duration_s),
            seconds(stage.ttft_s),
            escape(model),
            escape(f"hit {stage.cache}") if stage.cache else "miss",
            _bar(stage.start_s, stage.duration_s, span),
        )
    print_table(table, console)
    outcome = {True: "succeeded", False: "[red]failed[/]", None: "running"}[task.success]
    if task.abandoned:
        outcome = "[red]abandoned[/] (started, never ended)"
    elif task.cancelled:
        outcome = "[yellow]cancelled[/]"
    if task.accepted is not None:
        outcome += " · " + ("accepted by" if task.accepted else "[red]rejected[/] by")
        outcome += " the quality gate"
    cost = usd_total(task.cost_usd, unpriced=task.unpriced_calls, calls=task.calls)
    console.print(
        f"[bold]total {seconds(task.total_s)}[/] · {outcome} · cost {cost} · "
        f"tokens in {task.input_tokens:,} / out {task.output_tokens:,}"
    )
    for gate in task.gates:
        status = "[green]pass[/]" if gate.passed else "[red]fail[/]"
        reasons = "; ".join([*gate.evidence_problems, *gate.reasons]) or NONE
        console.print(
            f"gate, pass {gate.pass_number}: {status} · judge score {_score(gate.judge_score)} · "
            f"{escape(reasons)}"
        )
    if task.async_fallback:
        console.print(f"async thesis fell back: {escape(task.async_fallback)}", style="yellow")
    for error in task.errors:
        console.print(f"error: {escape(error)}", style="red")


def _gate(accepted: int, judged: int, finished: int) -> str:
    """The acceptance rate over the judged tasks, and how many finished without a gate."""
    if not judged:
        return "no answer went through the quality gate" if finished else "none judged"
    ungated = finished - judged
    without = f", {ungated} without a gate" if ungated else ""
    return (
        f"{accepted}/{judged} accepted by the quality gate ({percent(accepted / judged)}{without})"
    )


def _duration(seconds_: float) -> str:
    """``15 min``, ``2 h``, ``45 s``: how long a timeout is, in its largest whole unit."""
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds_ >= size and seconds_ % size == 0:
            return f"{seconds_ / size:g} {unit}"
    return f"{seconds_:g} s"


def _score(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else NONE


def _bar(start: float, duration: float, span: float) -> str:
    if span <= 0:
        return ""
    offset = min(int(start / span * TIMELINE_WIDTH), TIMELINE_WIDTH - 1)
    length = max(1, round(duration / span * TIMELINE_WIDTH))
    length = min(length, TIMELINE_WIDTH - offset)
    return " " * offset + "█" * length + " " * (TIMELINE_WIDTH - offset - length)
