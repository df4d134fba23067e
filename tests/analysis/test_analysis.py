"""Ledger analysis on synthetic tasks with known timings: summary, comparison, last task,
plots."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import pytest

from helios.analysis.plots import plot_comparison, plot_summary
from helios.analysis.stats import describe
from helios.analysis.summary import compare, last_task, summarize
from helios.errors import InputError
from helios.ledger.events import (
    AsyncFallback,
    CacheLookup,
    ErrorEvent,
    Event,
    EvidenceGathered,
    FlagChanged,
    FlagValue,
    GateVerdict,
    PersonaLLMRun,
    SecondPass,
    TaskFinished,
    TaskStarted,
)
from helios.ledger.memory import MemoryLedgerStore
from helios.ledger.store import EventQuery

EPOCH = 1_700_000_000.0
"""Where test time starts: the ledger refuses timestamps before 2000."""
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
Call = tuple[str, float] | tuple[str, float, dict[str, object]]


def build_task(
    task_id: str,
    t0: float,
    *,
    flags: dict[str, FlagValue] | None = None,
    evidence: float | None = 0.5,
    calls: Sequence[Call] = (("thesis", 1.0), ("antithesis", 1.0), ("synthesis", 1.0)),
    total: float | None = None,
    success: bool = True,
    model: str = "local",
    extra: Sequence[Event] = (),
) -> list[Event]:
    """One task laid out step after step from ``t0``; events are stamped when a step ends.

    ``total`` defaults to the sum of the steps; ``calls`` are ``(stage, seconds[, fields])``.
    """
    clock = t0
    events: list[Event] = [
        TaskStarted(task_id=task_id, timestamp=t0, goal=f"goal {task_id}", flags=flags or {})
    ]
    if evidence is not None:
        clock += evidence
        events.append(
            EvidenceGathered(
                task_id=task_id,
                timestamp=clock,
                documents=1,
                chunks=4,
                passages=2,
                embedded_chunks=4,
                from_cache=False,
                duration_s=evidence,
            )
        )
    for call in calls:
        stage, seconds = call[0], call[1]
        fields: dict[str, object] = {
            "persona": stage,
            "stage": stage,
            "provider": "llamacpp",
            "model": model,
            "streaming": True,
            "ttft_s": seconds / 4,
            "perceived_improvement": 0.75,
            "input_tokens": 100,
            "output_tokens": 20,
            "cost_usd": 0.01,
        }
        fields.update(call[2] if len(call) > 2 else {})  # type: ignore[misc]
        clock += seconds
        events.append(
            PersonaLLMRun.model_validate(
                {"task_id": task_id, "timestamp": clock, "duration_s": seconds, **fields}
            )
        )
    events.extend(extra)
    events.append(
        TaskFinished(
            task_id=task_id,
            timestamp=clock,
            success=success,
            duration_s=total if total is not None else clock - t0,
        )
    )
    return events


def arm_tasks(
    prefix: str, totals: Sequence[float], flags: dict[str, FlagValue], t0: float = EPOCH + 1000.0
) -> list[Event]:
    events: list[Event] = []
    for i, total in enumerate(totals):
        events += build_task(f"{prefix}{i}", t0 + 100 * i, flags=flags, total=total)
    return events


# -- summarize ----------------------------------------------------------------------------
async def test_summary_statistics_are_exact() -> None:
    store = MemoryLedgerStore()
    second_pass = SecondPass(task_id="b", timestamp=EPOCH + 205.0, pass_number=2, feedback="more")
    await store.append(
        [
            *build_task(
                "a",
                EPOCH + 100.0,
                total=2.0,
                extra=[CacheLookup(task_id="a", persona="thesis", layer="L2", hit=True)],
            ),
            *build_task(
                "b",
                EPOCH + 200.0,
                total=4.0,
                calls=[
                    ("thesis", 2.0),
                    ("antithesis", 1.0),
                    ("synthesis", 1.0),
                    ("synthesis", 3.0, {"pass_number": 2, "cost_saved_usd": 0.5}),
                ],
                extra=[
                    second_pass,
                    CacheLookup(task_id="b", persona="thesis", layer="L2", hit=False),
                    AsyncFallback(task_id="b", reason="timeout"),
                ],
            ),
            *build_task("c", EPOCH + 300.0, total=6.0, flags={"async_thesis": False}),
            *build_task(
                "d",
                EPOCH + 400.0,
                total=0.3,
                success=False,
                calls=[("thesis", 0.2)],
                extra=[ErrorEvent(task_id="d", kind="ProviderTimeout", message="slow")],
            ),
            FlagChanged(flag="async_thesis", old=None, new=False, reason="r", actor="t"),
        ]
    )
    summary = summarize(await store.query())

    assert summary.tasks == 4  # the flag_changed event is no task
    assert (summary.finished, summary.succeeded, summary.success_rate) == (4, 3, 0.75)
    total = summary.latency["total"]  # the failed task does not count
    assert (total.n, total.mean, total.sd, total.p50) == (3, 4.0, 2.0, 4.0)
    assert total.p95 == pytest.approx(5.8)
    assert list(summary.latency) == ["evidence", "thesis", "antithesis", "synthesis", "total"]
    synthesis = summary.latency["synthesis"]  # b's two passes are summed: 4 s
    assert synthesis.values == (1.0, 4.0, 1.0)
    assert synthesis.mean == pytest.approx(2.0)
    assert synthesis.sd == pytest.approx(math.sqrt(3.0))
    thesis = summary.latency["thesis"]
    assert thesis.n == 4 and thesis.mean == pytest.approx((1 + 2 + 1 + 0.2) / 4)
    assert summary.ttft["thesis"].mean == pytest.approx((1 + 2 + 1 + 0.2) / 16)
    assert summary.cache["L2"].to_dict() == {"lookups": 2, "hits": 1, "hit_rate": 0.5}
    assert (summary.input_tokens, summary.output_tokens) == (1100, 220)
    assert summary.cost_usd == pytest.approx(0.11)
    assert summary.saved_usd == pytest.approx(0.5)
    # c ran without the async thesis: 1 fallback among 3 async tasks
    assert (summary.async_tasks, summary.async_fallbacks) == (3, 1)
    assert summary.async_fallback_rate == pytest.approx(1 / 3)
    assert summary.second_pass_rate == 0.25
    assert summary.errors == {"ProviderTimeout": 1}
    document = json.loads(json.dumps(summary.to_dict(), allow_nan=False))
    assert document["latency_s"]["total"]["mean"] == 4.0


def test_summary_of_nothing_is_defined() -> None:
    summary = summarize([])
    assert summary.tasks == 0
    assert summary.success_rate is None
    assert summary.latency["total"].mean is None
    json.dumps(summary.to_dict(), allow_nan=False)


def test_one_task_has_no_sd() -> None:
    summary = summarize(build_task("a", EPOCH + 0.0, total=3.0))
    assert summary.latency["total"].to_dict() == {
        "n": 1,
        "mean": 3.0,
        "sd": None,
        "p50": 3.0,
        "p95": 3.0,
    }


# -- compare ------------------------------------------------------------------------------
OFFSETS = [-2.0, -1.0, -0.5, 0.0, 0.0, 0.5, 1.0, 2.0, -1.5, 1.5]


async def test_compare_two_clearly_different_arms() -> None:
    store = MemoryLedgerStore()
    await store.append(arm_tasks("sync", [10 + d for d in OFFSETS], {"async_thesis": False}))
    await store.append(
        arm_tasks("async", [8 + 2 * d for d in OFFSETS], {"async_thesis": True}, t0=EPOCH + 5000.0)
    )
    result = compare(await store.query(), "flag:async_thesis")

    assert result.baseline == "false"
    assert [(arm.label, arm.tasks) for arm in result.arms] == [("false", 10), ("true", 10)]
    assert result.arm("false").metrics["total"].mean == pytest.approx(10.0)  # type: ignore[union-attr]
    assert result.arm("true").metrics["total"].mean == pytest.approx(8.0)  # type: ignore[union-attr]
    total = result.difference("true")
    assert total is not None
    assert total.improvement_pct == pytest.approx(20.0)
    assert total.variance_change_pct == pytest.approx(300.0)  # twice the spread
    assert total.mean_difference_s == pytest.approx(-2.0)
    assert total.p_value is not None and total.p_value < 0.05
    assert total.ci_low_s is not None and total.ci_high_s is not None
    assert total.ci_low_s < -2.0 < total.ci_high_s
    assert total.significant
    assert "true is 20.0% faster than false" in total.verdict
    assert result.verdicts == [f"true vs false: {total.verdict}"]
    # Per stage too: the stages are identical in both arms.
    thesis = result.difference("true", "thesis")
    assert thesis is not None and thesis.improvement_pct == 0.0
    assert "cannot test" in thesis.verdict  # constant stage times: no t-test, no NaN
    json.dumps(result.to_dict(), allow_nan=False)


def test_compare_identical_arms_is_not_significant() -> None:
    totals = [10 + d for d in OFFSETS]
    events = arm_tasks("a", totals, {"async_thesis": False}) + arm_tasks(
        "b", totals, {"async_thesis": True}, t0=EPOCH + 5000.0
    )
    total = compare(events, "flag:async_thesis").difference("true")
    assert total is not None
    assert total.p_value == pytest.approx(1.0)
    assert total.improvement_pct == 0.0 and total.variance_change_pct == 0.0
    assert not total.significant
    assert total.verdict == "no significant difference at n=10 vs 10 (p=1.000)"


def test_compare_refuses_to_conclude_on_small_arms() -> None:
    events = arm_tasks("a", [10, 11, 12], {"async_thesis": False}) + arm_tasks(
        "b", [1, 2, 3], {"async_thesis": True}, t0=EPOCH + 5000.0
    )
    total = compare(events, "flag:async_thesis").difference("true")
    assert total is not None
    assert total.p_value is not None and total.p_value < 0.05  # computed, but not trusted
    assert not total.significant
    assert total.verdict.startswith("too few tasks to conclude (n=3 vs 3")


def test_compare_baseline_choice() -> None:
    events = arm_tasks("a", [10, 11, 12], {"mode": "b"}) + arm_tasks(
        "b", [1, 2, 3], {"mode": "a"}, t0=EPOCH + 5000.0
    )
    assert compare(events, "flag:mode").baseline == "a"  # no "false": first sorted
    chosen = compare(events, "flag:mode", baseline="B")
    assert chosen.baseline == "b"
    assert [d.arm for d in chosen.differences if d.metric == "total"] == ["a"]
    with pytest.raises(InputError, match=r"--baseline c: no such arm for flag:mode \(arms: a, b\)"):
        compare(events, "flag:mode", baseline="c")


def test_compare_unknown_by_lists_the_choices() -> None:
    events = arm_tasks("a", [1, 2], {"async_thesis": True, "parallel_prep": False})
    with pytest.raises(InputError) as info:
        compare(events, "colour")
    assert str(info.value) == (
        "unknown --by 'colour': choose one of flag:async_thesis, flag:parallel_prep, "
        "model, provider, persona, streaming, kind, documents"
    )
    with pytest.raises(InputError, match="unknown --by 'flag:nope'"):
        compare(events, "flag:nope")


def test_compare_by_model_puts_mixed_tasks_in_their_own_arm() -> None:
    events = [
        *build_task("a", EPOCH + 0.0, model="sonnet", total=3.0),
        *build_task("b", EPOCH + 10.0, model="haiku", total=2.0),
        *build_task(
            "c",
            EPOCH + 20.0,
            calls=[("thesis", 1.0, {"model": "sonnet"}), ("antithesis", 1.0, {"model": "haiku"})],
            total=4.0,
        ),
        *build_task("d", EPOCH + 30.0, calls=[], total=0.5),  # no persona calls: left out
    ]
    result = compare(events, "model")
    assert [arm.label for arm in result.arms] == ["haiku", "sonnet", "mixed"]
    assert result.baseline == "haiku"
    assert result.arm("mixed").metrics["total"].values == (4.0,)  # type: ignore[union-attr]
    assert result.excluded == 1
    assert result.notes == [
        "1 task(s) left out: they made no persona calls",
        "1 task(s) used several model values: arm 'mixed'",
    ]


def test_compare_leaves_out_tasks_without_the_flag() -> None:
    events = arm_tasks("a", [1, 2], {"async_thesis": True}) + arm_tasks(
        "b", [1, 2], {}, t0=EPOCH + 5000.0
    )
    result = compare(events, "flag:async_thesis")
    assert [arm.label for arm in result.arms] == ["true"]
    assert result.excluded == 2
    assert result.verdicts == ["only one arm (true) for flag:async_thesis: nothing to compare"]
    assert result.differences == []


def test_describe_ignores_non_finite_values() -> None:
    assert describe([1.0, float("nan"), 3.0]).mean == 2.0


def test_describe_reports_the_percentiles_numpy_did() -> None:
    # describe() used np.percentile before helios.percentiles: the figures must not move
    import numpy as np

    rng = np.random.default_rng(7)
    for size in range(1, 60):
        values = rng.lognormal(0.0, 1.0, size).tolist()
        dist = describe(values)
        assert (dist.p50, dist.p95) == tuple(float(q) for q in np.percentile(values, [50, 95]))


# -- last task ----------------------------------------------------------------------------
async def test_last_task_breakdown() -> None:
    store = MemoryLedgerStore()
    await store.append(build_task("old", EPOCH + 0.0))
    gate = GateVerdict(
        task_id="new",
        timestamp=EPOCH + 106.0,
        pass_number=1,
        passed=True,
        evidence_ok=True,
        judge_pass=True,
        judge_score=0.9,
        judge_valid=True,
        reasons=["sound"],
    )
    await store.append(
        build_task(
            "new",
            EPOCH + 100.0,
            flags={"async_thesis": False},
            calls=[
                ("thesis", 2.0, {"model": "opus"}),
                ("antithesis", 1.0, {"cache_layer": "L2", "ttft_s": 0.01}),
                ("synthesis", 2.5),
            ],
            extra=[gate],
        )
    )
    breakdown = last_task(await store.query(EventQuery(last_tasks=1)))
    assert breakdown is not None
    assert breakdown.task_id == "new" and breakdown.goal == "goal new"
    assert breakdown.flags == {"async_thesis": False}
    assert breakdown.success is True and breakdown.total_s == pytest.approx(6.0)
    rows = [(s.stage, s.start_s, s.duration_s, s.model, s.cache) for s in breakdown.stages]
    assert rows == [
        ("evidence", 0.0, 0.5, None, None),
        ("thesis", pytest.approx(0.5), 2.0, "opus", None),
        ("antithesis", pytest.approx(2.5), 1.0, "local", "L2"),
        ("synthesis", pytest.approx(3.5), 2.5, "local", None),
    ]
    assert breakdown.stages[2].ttft_s == 0.01
    assert [g.judge_score for g in breakdown.gates] == [0.9]
    assert breakdown.cost_usd == pytest.approx(0.03)
    document = json.loads(json.dumps(breakdown.to_dict(), allow_nan=False))
    assert document["gates"][0]["reasons"] == ["sound"]


def test_last_task_of_nothing() -> None:
    assert last_task([]) is None


# -- plots --------------------------------------------------------------------------------
def test_plots_are_png_files(tmp_path: Path) -> None:
    events = arm_tasks("a", [10, 11, 12], {"async_thesis": False}) + arm_tasks(
        "b", [8, 9], {"async_thesis": True}, t0=EPOCH + 5000.0
    )
    plot_comparison(compare(events, "flag:async_thesis"), tmp_path / "compare.png")
    plot_summary(summarize(events), tmp_path / "summary.png")
    plot_summary(summarize([]), tmp_path / "empty.png")
    for name in ("compare.png", "summary.png", "empty.png"):
        assert (tmp_path / name).read_bytes().startswith(PNG_MAGIC)


def test_plot_to_an_unwritable_path_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"--plot .*missing.*: cannot write it"):
        plot_summary(summarize([]), tmp_path / "missing" / "plot.png")


def test_non_finite_values_never_reach_the_results() -> None:
    nan = float("nan")
    events = build_task(
        "a",
        EPOCH + 0.0,
        calls=[("thesis", 1.0, {"duration_s": nan, "ttft_s": nan, "cost_usd": float("inf")})],
        total=nan,
    )
    summary = summarize(events)
    # the NaN call and the NaN finish are left out, and counted
    assert summary.skipped_events == 2 and summary.to_dict()["skipped_events"] == 2
    assert "thesis" not in summary.latency and summary.latency["evidence"].n == 1
    assert summary.cost_usd == 0.0
    json.dumps(summary.to_dict(), allow_nan=False)
    breakdown = last_task(events)
    assert breakdown is not None and breakdown.total_s is None
    json.dumps(breakdown.to_dict(), allow_nan=False)


def test_a_timestamp_no_calendar_holds_is_left_out_of_every_analysis() -> None:
    normal = build_task("normal", EPOCH)
    future = [e.model_copy(update={"timestamp": 1.7e15}) for e in build_task("future", EPOCH)]
    events = [*normal, *future]
    summary = summarize(events)
    assert (summary.tasks, summary.skipped_events) == (1, len(future))
    assert summary.last_timestamp == normal[-1].timestamp
    breakdown = last_task(events)
    assert breakdown is not None and breakdown.task_id == "normal"
    comparison = compare(events, "model")
    assert [arm.tasks for arm in comparison.arms] == [1]
    assert any(f"skipped {len(future)} ledger events" in note for note in comparison.notes)


# -- outcomes: cancelled tasks, the quality gate's acceptance, unknown costs ----------------
def gated_task(
    task_id: str, t0: float, verdicts: Sequence[bool], flags: dict[str, FlagValue] | None = None
) -> list[Event]:
    """A task whose synthesis passes the gate judged ``verdicts``, in order."""
    gates = [
        GateVerdict(
            task_id=task_id,
            timestamp=t0 + 3,
            pass_number=number,
            passed=passed,
            evidence_ok=True,
            judge_pass=passed,
            judge_score=0.9 if passed else 0.2,
            judge_valid=True,
        )
        for number, passed in enumerate(verdicts, start=1)
    ]
    events = build_task(task_id, t0, extra=gates, flags=flags)
    finished = events[-1]
    assert isinstance(finished, TaskFinished)
    accepted = next((n for n, passed in enumerate(verdicts, start=1) if passed), None)
    update = {"passes": len(verdicts), "accepted_pass": accepted}
    return [*events[:-1], finished.model_copy(update=update)]


def cancelled_task(
    task_id: str, t0: float, kind: str = "cancelled", flags: dict[str, FlagValue] | None = None
) -> list[Event]:
    """A run stopped by Ctrl-C during its antithesis, as the pipeline records it."""
    stop = ErrorEvent(task_id=task_id, kind=kind, message="", stage="antithesis", timestamp=t0 + 2)
    return build_task(
        task_id, t0, success=False, calls=[("thesis", 1.0)], extra=[stop], flags=flags
    )


def mixed_outcomes(t0: float = EPOCH, flags: dict[str, FlagValue] | None = None) -> list[Event]:
    """3 accepted, 2 rejected, 1 ungated success, 1 failure, 2 cancelled (one old-style)."""
    failure = ErrorEvent(task_id="x", kind="ProviderTimeout", message="slow", timestamp=t0 + 90)
    return [
        *gated_task("ok1", t0, [True], flags),
        *gated_task("ok2", t0 + 10, [False, True], flags),
        *gated_task("ok3", t0 + 20, [True], flags),
        *gated_task("no1", t0 + 30, [False, False], flags),
        *gated_task("no2", t0 + 40, [False, False], flags),
        *build_task("dag", t0 + 50, flags=flags),
        *build_task("x", t0 + 60, success=False, extra=[failure], flags=flags),
        *cancelled_task("c1", t0 + 70, flags=flags),
        *cancelled_task("c2", t0 + 80, kind="interrupted", flags=flags),
    ]


def test_summary_counts_cancelled_tasks_apart_and_the_acceptance_rate() -> None:
    summary = summarize(mixed_outcomes(), now=EPOCH + 1000)
    assert (summary.tasks, summary.finished, summary.cancelled) == (9, 9, 2)
    # the success rate leaves the cancelled tasks out: 6 of 7, not 6 of 9
    assert (summary.succeeded, summary.rated, summary.success_rate) == (6, 7, pytest.approx(6 / 7))
    # the gate judged 5 tasks; the DAG-like task and the failure before a gate are neither
    assert (summary.judged, summary.accepted, summary.acceptance_rate) == (5, 3, 0.6)
    assert summary.errors == {"ProviderTimeout": 1}  # a cancellation is no error
    document = summary.to_dict()
    assert {key: document[key] for key in ("cancelled", "judged", "accepted")} == {
        "cancelled": 2,
        "judged": 5,
        "accepted": 3,
    }
    assert document["acceptance_rate"] == 0.6
    assert document["success_rate"] == pytest.approx(6 / 7)


def test_every_success_and_no_acceptance_is_shown_as_such() -> None:
    events = [e for n in range(4) for e in gated_task(f"t{n}", EPOCH + 10 * n, [False, False])]
    summary = summarize(events, now=EPOCH + 1000)
    assert (summary.success_rate, summary.acceptance_rate) == (1.0, 0.0)


def test_compare_reports_success_and_acceptance_per_arm() -> None:
    events = [
        *mixed_outcomes(EPOCH, {"async_thesis": True}),
        *[
            e
            for n in range(4)
            for e in gated_task(
                f"s{n}", EPOCH + 500 + 10 * n, [True], flags={"async_thesis": False}
            )
        ],
    ]
    result = compare(events, "flag:async_thesis", now=EPOCH + 1000)
    on, off = result.arm("true"), result.arm("false")
    assert on is not None and off is not None
    assert (on.outcomes.succeeded, on.outcomes.rated, on.outcomes.cancelled) == (6, 7, 2)
    assert (on.outcomes.accepted, on.outcomes.judged) == (3, 5)
    assert (off.outcomes.success_rate, off.outcomes.acceptance_rate) == (1.0, 1.0)
    arm = next(a for a in result.to_dict()["arms"] if a["label"] == "true")
    assert (arm["success_rate"], arm["acceptance_rate"]) == (pytest.approx(6 / 7), 0.6)
    assert (arm["cancelled"], arm["judged"], arm["accepted"]) == (2, 5, 3)


def test_compare_counts_an_abandoned_task_as_ended_unsuccessful() -> None:
    started = TaskStarted(task_id="gone", timestamp=EPOCH, goal="g", flags={"mode": "a"})
    events = [*build_task("ok", EPOCH, flags={"mode": "a"}), started]
    arm = compare(events, "flag:mode", now=EPOCH + 10_000, abandoned_after_s=900).arms[0]
    assert (arm.outcomes.abandoned, arm.outcomes.success_rate) == (1, 0.5)
    running = compare(events, "flag:mode", now=EPOCH + 100, abandoned_after_s=900).arms[0]
    assert (running.outcomes.running, running.outcomes.success_rate) == (1, 1.0)


def test_last_task_says_cancelled_and_gate_verdict() -> None:
    breakdown = last_task(cancelled_task("c", EPOCH), now=EPOCH + 10)
    assert breakdown is not None
    assert (breakdown.success, breakdown.cancelled, breakdown.accepted) == (False, True, None)
    rejected = last_task(gated_task("r", EPOCH, [False, False]), now=EPOCH + 10)
    assert rejected is not None and rejected.accepted is False
    assert rejected.to_dict()["accepted"] is False


def test_a_cost_no_call_has_a_price_for_is_unknown() -> None:
    unpriced = {"cost_usd": None}
    events = build_task("a", EPOCH, calls=[("thesis", 1.0, unpriced), ("synthesis", 1.0, unpriced)])
    summary = summarize(events, now=EPOCH + 10)
    assert (summary.calls, summary.unpriced_calls, summary.cost_known) == (2, 2, False)
    assert summary.to_dict()["cost_usd"] is None
    breakdown = last_task(events, now=EPOCH + 10)
    assert breakdown is not None and breakdown.to_dict()["cost_usd"] is None
    partly = build_task("b", EPOCH, calls=[("thesis", 1.0, unpriced), ("synthesis", 1.0)])
    assert summarize(partly, now=EPOCH + 10).to_dict()["cost_usd"] == pytest.approx(0.01)
