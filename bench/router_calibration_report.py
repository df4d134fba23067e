"""The printed tables of router_calibration.py, and its targets (issue: "a router you can
trust"): held-out agreement >= 85 %, cost <= 0.6x all-strong, decide() p50 <= 0.3 ms."""

from __future__ import annotations

from typing import Any

AGREEMENT_TARGET = 0.85
COST_TARGET = 0.6
DECIDE_P50_TARGET_US = 300.0


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def table(result: dict[str, Any]) -> str:
    lines = [f"router calibration: {result['labelled_prompts']} labelled prompts"]
    lines.append(f"{'':<24}{'baseline':>22}{'calibrated':>22}")
    for half in ("tune", "heldout"):
        for measure in ("strict", "local_as_fast"):
            base = result["baseline"]["agreement"][half][measure]
            new = result["calibrated"]["agreement"][half][measure]
            lines.append(f"{half + ' ' + measure:<24}{base:>22.1%}{new:>22.1%}")
    for name in ("baseline", "calibrated"):
        cost = result[name]["cost"]
        shares = ", ".join(f"{t} {s:.1%}" for t, s in cost["share_by_tier"].items())
        lines.append(f"cost {name}: {cost['ratio']:.3f}x all-strong ({shares})")
        lines.append(f"  with fast = haiku: {result[name]['cost_fast_as_haiku']:.3f}x")
    floor = result["cost_floor_essays_on_strong"]
    lines.append(
        f"lowest ratio with essays on strong: {floor['no_local']:.3f} "
        f"({floor['factual_on_local']:.3f} with factual questions on a free local model)"
    )
    for group, figures in result["decide_latency"].items():
        base, new = figures["baseline"], figures["calibrated"]
        for clock, label in (("", "wall"), ("cpu_", "cpu")):
            lines.append(
                f"decide() {group:<6}{label:>5} p50 {base[clock + 'p50_us']:>8.1f} -> "
                f"{new[clock + 'p50_us']:>7.1f} us, p99 {base[clock + 'p99_us']:>8.1f} -> "
                f"{new[clock + 'p99_us']:>7.1f} us ({figures['prompts']} prompts)"
            )
    before, after = result["load_average_before"], result["load_average_after"]
    lines.append(f"load average (1 min) before / after the timings: {before[0]} / {after[0]}")
    heldout = result["calibrated"]["agreement"]["heldout"]["strict"]
    ratio = result["calibrated"]["cost"]["ratio"]
    worst_p50 = max(g["calibrated"]["p50_us"] for g in result["decide_latency"].values())
    worst_cpu = max(g["calibrated"]["cpu_p50_us"] for g in result["decide_latency"].values())
    lines += [
        f"target held-out agreement >= {AGREEMENT_TARGET:.0%}: {_met(heldout >= AGREEMENT_TARGET)}",
        f"target cost <= {COST_TARGET}x all-strong: {_met(ratio <= COST_TARGET)}",
        f"target decide() p50 <= {DECIDE_P50_TARGET_US / 1000} ms: wall "
        f"{_met(worst_p50 <= DECIDE_P50_TARGET_US)}, cpu {_met(worst_cpu <= DECIDE_P50_TARGET_US)}",
        "held-out agreement by kind: "
        + ", ".join(f"{k} {v}" for k, v in heldout_by_kind(result).items()),
    ]
    return "\n".join(lines)


def heldout_by_kind(result: dict[str, Any]) -> dict[str, str]:
    by_kind: dict[str, str] = result["calibrated"]["agreement"]["heldout"]["by_kind"]
    return by_kind
