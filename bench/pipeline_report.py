"""bench/pipeline.py's printed tables (Markdown, as bench/README.md shows them)."""

from __future__ import annotations

from typing import Any


def pm(stats: dict[str, float]) -> str:
    return f"{stats['mean_ms']:.1f} ± {stats['sd_ms']:.1f}"


def print_tables(result: dict[str, Any]) -> None:
    arms: dict[str, Any] = result["arms"]
    config: dict[str, Any] = result["config"]
    stages: list[str] = list(config["stages"])

    def scaled(stage: str) -> tuple[float, float]:
        mean, sd = config["reference_s"][stage]
        return mean / config["scale"], sd / config["scale"]

    print("\nTask time (ms; improvement and variance change of the total vs sequential)\n")
    print(
        "| arm | n | total mean ± sd | improvement | variance change | paired saving "
        "(95% CI) | predicted saving | to answer mean ± sd | answer improvement |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, stats in arms.items():
        vs = stats.get("vs_baseline")
        if vs is None:
            cells = ["—"] * 5
        else:
            saving = vs["paired_saving_ms"]
            cells = [
                f"{vs['improvement_pct']:+.1f} %",
                f"{vs['variance_change_pct']:+.1f} %",
                f"{saving['mean']:.1f} ± {saving['ci95']:.1f}",
                f"{vs['predicted_saving_ms']:.1f}",
                f"{vs['answer_improvement_pct']:+.1f} %",
            ]
        print(
            f"| {name} | {stats['n']} | {pm(stats['total'])} | {cells[0]} | {cells[1]} | "
            f"{cells[2]} | {cells[3]} | {pm(stats['answer'])} | {cells[4]} |"
        )

    print(f"\nTokens and cost per task (cost: the tokens at {config['priced_as']}'s prices)\n")
    print("| arm | input tokens | output tokens | cost $ | input / output / cost vs sequential |")
    print("|---|---|---|---|---|")
    for name, stats in arms.items():
        vs = stats.get("vs_baseline")
        ratios = (
            "—"
            if vs is None
            else f"{vs['input_tokens_ratio']:.2f}x / {vs['output_tokens_ratio']:.2f}x / "
            f"{vs['cost_ratio']:.2f}x"
        )
        tokens = stats["tokens"]
        print(
            f"| {name} | {tokens['input_mean']:.0f} | {tokens['output_mean']:.0f} | "
            f"{stats['cost_usd_mean']:.5f} | {ratios} |"
        )

    print("\nStage durations (ms, mean ± sd; judge = both calls of the gate)\n")
    print("| arm | " + " | ".join(stages) + " |")
    print("|---|" + "---|" * len(stages))
    target = [f"{m * 1000:.1f} ± {s * 1000:.1f}" for m, s in map(scaled, stages)]
    target[-1] += " per call"
    print("| target (reference ÷ 100) | " + " | ".join(target) + " |")
    for name, stats in arms.items():
        cells = [pm(stats["stages"][s]) if s in stats["stages"] else "—" for s in stages]
        print(f"| {name} | " + " | ".join(cells) + " |")

    print("\nStreaming (all arms pooled; ms)\n")
    print("| persona | TTFT mean | TTFT p50 | total mean | total p50 | perceived improvement |")
    print("|---|---|---|---|---|---|")
    for persona, s in result["streaming_pooled"].items():
        print(
            f"| {persona} | {s['ttft_mean_ms']:.1f} | {s['ttft_p50_ms']:.1f} | "
            f"{s['duration_mean_ms']:.1f} | {s['duration_p50_ms']:.1f} | "
            f"{s['perceived_improvement_mean']:.1%} (p50 {s['perceived_improvement_p50']:.1%}) |"
        )

    print("\nHelios overhead per persona call: engine time - provider time (ms; target p50 ≤ 2)\n")
    print(
        "| persona | calls | p50 | p99 | mean | provider p50 | provider - drawn p50 "
        "| provider - drawn p99 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    overhead = result["overhead"]
    for persona, s in [*overhead["by_persona"].items(), ("all", overhead["all"])]:
        print(
            f"| {persona} | {s['calls']} | {s['p50_ms']:.3f} | {s['p99_ms']:.3f} | "
            f"{s['mean_ms']:.3f} | {s['provider_p50_ms']:.1f} | "
            f"{s['sim_excess_p50_ms']:.1f} | {s['sim_excess_p99_ms']:.1f} |"
        )
