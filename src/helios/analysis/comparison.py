"""A/B comparison of tasks split into arms, each arm tested against a baseline arm.

``by`` picks what splits the tasks:

- ``flag:<name>``: the value ``task_started.flags`` recorded (``flag:async_thesis``); tasks
  that did not record the flag are left out (counted in ``excluded``).
- a persona-call field (``model``, ``provider``, ``persona``, ``streaming``): the value the
  task's ``persona_llm_run`` events share. A task whose calls used several values goes to
  its own arm, ``mixed``, rather than being split: the metrics are per task (a task's total
  time cannot be divided between models), and ``mixed`` says so plainly. Tasks without
  persona calls are left out.
- a task field (``kind``, ``documents``): the ``task_started`` value.

The baseline is ``--baseline`` when given, else the arm ``false`` when there is one, else
the first arm in sorted order (``mixed`` last).

Each arm also says how its tasks ended (:class:`~helios.analysis.tasks.Outcomes`): the
success rate (cancelled tasks aside) and the quality gate's acceptance rate (tasks with no
gate aside), beside the latencies.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from helios.analysis.stats import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    Difference,
    Distribution,
    describe,
    difference,
)
from helios.analysis.tasks import (
    TOTAL,
    Outcomes,
    TaskRecord,
    group_tasks,
    label,
    metric_names,
    outcomes,
)
from helios.config.ledger import DEFAULT_ABANDONED_AFTER_S
from helios.errors import InputError
from helios.ledger.events import Event
from helios.ledger.validation import screen

CALL_FIELDS = ("model", "provider", "persona", "streaming")
TASK_FIELDS = ("kind", "documents")
MIXED = "mixed"


@dataclass(frozen=True, slots=True)
class Arm:
    label: str
    tasks: int
    metrics: dict[str, Distribution]
    """Latency per stage and ``total``, in seconds."""
    outcomes: Outcomes
    """How the arm's tasks ended: success and acceptance rates."""

    def to_dict(self) -> dict[str, Any]:
        ended = self.outcomes
        return {
            "label": self.label,
            "tasks": self.tasks,
            "succeeded": ended.succeeded,
            "failed": ended.failed,
            "cancelled": ended.cancelled,
            "abandoned": ended.abandoned,
            "running": ended.running,
            "success_rate": ended.success_rate,
            "judged": ended.judged,
            "accepted": ended.accepted,
            "acceptance_rate": ended.acceptance_rate,
            "latency_s": {name: d.to_dict() for name, d in self.metrics.items()},
        }


@dataclass(frozen=True, slots=True)
class Comparison:
    by: str
    baseline: str | None
    arms: list[Arm]
    differences: list[Difference]
    """Every non-baseline arm against the baseline, metric by metric."""
    excluded: int = 0
    notes: list[str] = field(default_factory=list)

    def arm(self, name: str) -> Arm | None:
        return next((arm for arm in self.arms if arm.label == name), None)

    def difference(self, arm: str, metric: str = TOTAL) -> Difference | None:
        return next((d for d in self.differences if d.arm == arm and d.metric == metric), None)

    @property
    def verdicts(self) -> list[str]:
        """One sentence per non-baseline arm, on total task time."""
        if len(self.arms) < 2:
            only = f" ({self.arms[0].label})" if self.arms else ""
            return [f"only one arm{only} for {self.by}: nothing to compare"]
        return [
            f"{d.arm} vs {d.baseline}: {d.verdict}" for d in self.differences if d.metric == TOTAL
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "baseline": self.baseline,
            "arms": [arm.to_dict() for arm in self.arms],
            "differences": [d.to_dict() for d in self.differences],
            "excluded": self.excluded,
            "notes": list(self.notes),
            "verdicts": self.verdicts,
        }


def compare(
    events: Iterable[Event],
    by: str,
    baseline: str | None = None,
    *,
    where: Sequence[str] = (),
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    now: float | None = None,
    abandoned_after_s: float = DEFAULT_ABANDONED_AFTER_S,
) -> Comparison:
    """Split the tasks in ``events`` by ``by`` and test each arm against the baseline.

    ``where`` keeps only tasks matching every ``field=value`` (the fields ``--by`` takes),
    e.g. ``flag:parallel_prep=false`` to compare two arms of a three-arm experiment. A task
    with no end is abandoned once ``abandoned_after_s`` have passed since its start at
    ``now`` (default: the clock).
    """
    moment = time.time() if now is None else now
    screened = screen(events)  # a NaN or negative latency would poison every statistic
    tasks = select(group_tasks(screened.events), where)
    arm_of = _splitter(by, tasks)
    grouped: dict[str, list[TaskRecord]] = {}
    excluded = 0
    for task in tasks:
        name = arm_of(task)
        if name is None:
            excluded += 1
        else:
            grouped.setdefault(name, []).append(task)
    labels = sorted(grouped, key=_label_order)
    base = _baseline(by, labels, baseline)
    names = metric_names([task for group in grouped.values() for task in group])
    arms = [
        Arm(
            name,
            len(grouped[name]),
            _describe_arm(grouped[name], names),
            outcomes(grouped[name], now=moment, abandoned_after_s=abandoned_after_s),
        )
        for name in labels
    ]
    differences: list[Difference] = []
    base_arm = next((arm for arm in arms if arm.label == base), None)
    if base_arm is not None:
        for arm in arms:
            if arm is base_arm:
                continue
            for metric in names:
                differences.append(
                    difference(
                        metric,
                        (arm.label, arm.metrics[metric]),
                        (base_arm.label, base_arm.metrics[metric]),
                        resamples=resamples,
                        seed=seed,
                    )
                )
    return Comparison(
        by=by,
        baseline=base,
        arms=arms,
        differences=differences,
        excluded=excluded,
        notes=[*_notes(by, excluded, grouped), *filter(None, [screened.warning()])],
    )


def select(tasks: Sequence[TaskRecord], where: Sequence[str]) -> list[TaskRecord]:
    """The tasks whose ``field`` has ``value`` for every ``field=value`` in ``where``."""
    selected = list(tasks)
    for condition in where:
        field, sep, wanted = condition.partition("=")
        if not sep or not field:
            raise InputError(f"--where '{condition}': expected field=value, e.g. flag:x=true")
        value_of = _splitter(field, tasks)
        selected = [t for t in selected if (value_of(t) or "").lower() == wanted.lower()]
    return selected


def _describe_arm(tasks: Sequence[TaskRecord], names: Sequence[str]) -> dict[str, Distribution]:
    metrics = [task.metrics() for task in tasks]
    return {name: describe([m[name] for m in metrics if name in m]) for name in names}


def valid_choices(tasks: Sequence[TaskRecord]) -> list[str]:
    flags = sorted({name for task in tasks for name in task.flags})
    return [*(f"flag:{name}" for name in flags), *CALL_FIELDS, *TASK_FIELDS]


def _splitter(by: str, tasks: Sequence[TaskRecord]) -> Callable[[TaskRecord], str | None]:
    choices = valid_choices(tasks)
    if by not in choices:
        raise InputError(f"unknown --by '{by}': choose one of {', '.join(choices)}")
    if by.startswith("flag:"):
        flag = by.removeprefix("flag:")

        def by_flag(task: TaskRecord) -> str | None:
            value = task.flags.get(flag)
            return None if value is None else label(value)

        return by_flag
    if by in CALL_FIELDS:

        def by_call(task: TaskRecord) -> str | None:
            values = {label(getattr(call, by)) for call in task.calls}
            if not values:
                return None
            return values.pop() if len(values) == 1 else MIXED

        return by_call

    def by_task(task: TaskRecord) -> str | None:
        return None if task.started is None else label(getattr(task.started, by))

    return by_task


def _label_order(name: str) -> tuple[int, float, str]:
    if name == MIXED:
        return (2, 0.0, name)
    try:
        return (0, float(name), name)
    except ValueError:
        return (1, 0.0, name)


def _baseline(by: str, labels: Sequence[str], wanted: str | None) -> str | None:
    if wanted is not None:
        match = next((name for name in labels if name.lower() == wanted.lower()), None)
        if match is None:
            arms = ", ".join(labels) or "none"
            raise InputError(f"--baseline {wanted}: no such arm for {by} (arms: {arms})")
        return match
    if "false" in labels:
        return "false"
    return labels[0] if labels else None


def _notes(by: str, excluded: int, grouped: dict[str, list[TaskRecord]]) -> list[str]:
    notes = []
    if excluded:
        why = (
            "did not record the flag"
            if by.startswith("flag:")
            else "made no persona calls"
            if by in CALL_FIELDS
            else "have no task_started event"
        )
        notes.append(f"{excluded} task(s) left out: they {why}")
    if MIXED in grouped:
        notes.append(f"{len(grouped[MIXED])} task(s) used several {by} values: arm '{MIXED}'")
    return notes
