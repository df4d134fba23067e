"""The printed tables of ``semantic_quality.py``: results in, text out (no measuring here)."""

from __future__ import annotations

from typing import Any

TOP1 = -1.0
"""No threshold: every cosine is at least -1."""
TRAPS = ("negation", "entity_swap", "number_date", "scope")
SPLITS = ("tune", "held_out", "all")


def label(threshold: float) -> str:
    return "top-1" if threshold == TOP1 else f"{threshold:.2f}"


def share(value: float | None) -> str:
    return "   -  " if value is None else f"{value:6.1%}"


def print_latency(result: dict[str, Any]) -> None:
    latency = result["embed_latency"]
    print(f"\nembedding one short question ({latency['runs']} runs per model, interleaved):")
    for threads in ("threads=1", "threads=2"):
        for name, row in latency[threads].items():
            print(
                f"  {threads} {name:9} {row['embedder']:40} "
                f"p50 {row['p50_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms"
            )


def print_table(result: dict[str, Any]) -> None:
    print(f"embedder: {result['embedder']} ({result['model_file']})")
    recommended = label(result["recommended_threshold"])
    gpt = result["gptcache"]
    labels = gpt["same_fact_labels"]
    print(
        f"gptcache: {gpt['lookups']} lookups, {gpt['stored']} stored, k={result['k']}: "
        f"correct / wrong / miss by text, and by meaning ({labels['same_fact']} of "
        f"{labels['pairs']} labelled pairs of stored answers state the same fact)"
    )
    print(f"  {'threshold':10} {'cosine only':>16} {'cosine + verifier':>20} {'by meaning':>22}")
    for threshold, counts in gpt["results"]["cosine"].items():
        verified = gpt["results"]["verifier"][threshold]
        mark = "  <- recommended" if threshold == recommended else ""
        meaning = f"{meaning_cell(counts)} | {meaning_cell(verified)}"
        print(
            f"  {threshold:10} {counts_cell(counts):>16} {counts_cell(verified):>20} "
            f"{meaning:>22}{mark}"
        )
    for margin, counts in gpt["verifier_ambiguity_margin_at_recommended"].items():
        line = f"{counts['correct']}/{counts['wrong']}/{counts['miss']}"
        print(f"  verifier at {recommended} declining near-ties < {margin}: {line}")

    print("\nfow-cache questions: should-hit served at the best threshold with traps <= 1% | 5%")
    print("  (tune = sha256(id) even, rules tuned there; held-out = odd)")
    for arm in ("cosine", "verifier, no aligned floor", "verifier"):
        best = result["fow_questions"][arm]["best"]
        cells = "  ".join(
            f"{split}: {share(best[split]['1%']['served'])} | {share(best[split]['5%']['served'])}"
            for split in SPLITS
        )
        print(f"  {arm:26} {cells}")
    print("  at fixed thresholds (all 600): served should-hit, traps served (by kind)")
    for threshold in result["fow_questions"]["cosine"]["at_threshold"]:
        for arm in ("cosine", "verifier"):
            row = result["fow_questions"][arm]["at_threshold"][threshold]["all"]
            kinds = " ".join(f"{k}={row['by_group'].get(k, 0)}" for k in TRAPS)
            print(
                f"  {threshold:6} {arm:9} {share(row['served'])} "
                f"{row['traps_served']:3}/{row['traps']} ({kinds})"
            )

    conv = result["fow_conversations"]
    print(
        f"\nfow-cache conversations: {conv['pairs']} pairs, "
        f"{conv['pairs_sharing_earlier_turns']} share their earlier turns"
    )
    for name in ("helios_context/cosine", "helios_context/verifier", "last_message/cosine",
                 "last_message/verifier"):  # fmt: skip
        best = conv[name]["best"]["all"]
        at = conv[name]["at_threshold"][recommended]["all"]
        print(
            f"  {name:24} best served at traps <=1%: {share(best['1%']['served'])} "
            f"<=5%: {share(best['5%']['served'])}   at {recommended}: "
            f"served {share(at['served'])}, traps {at['traps_served']}/{at['traps']}"
        )

    print_rerank(result)
    print_curve(result)
    cost = result["verifier_cost"]
    print(
        f"\nverifier per candidate ({cost['candidates']} candidates): "
        f"cold {cost['cold_us']['median']:.0f} us median, {cost['cold_us']['p99']:.0f} us p99; "
        f"memoised {cost['memoised_us']['median']:.0f} us median, "
        f"{cost['memoised_us']['p99']:.0f} us p99 ({cost['clock']})"
    )
    for k, call in result["select_cost"].items():
        print(
            f"select() with {k}, stored questions memoised, query new: "
            f"{call['call_us']['median']:.0f} us median, {call['call_us']['p99']:.0f} us p99 "
            f"per call; {call['per_candidate_us']['median']:.0f} us median, "
            f"{call['per_candidate_us']['p99']:.0f} us p99 per candidate"
        )
    print_latency(result)
    print(
        f"\nrecommended default threshold with the verifier on: {recommended} "
        f"({result['recommendation_rule']})"
    )


def counts_cell(counts: dict[str, int]) -> str:
    return f"{counts['correct']}/{counts['wrong']}/{counts['miss']}"


def meaning_cell(counts: dict[str, int]) -> str:
    """correct / wrong counted by meaning, with the wrong hits no label covers."""
    same = counts["same_fact"]
    cell = f"{counts['correct'] + same}/{counts['wrong'] - same}"
    return f"{cell} ({counts['unlabelled']}?)" if counts["unlabelled"] else cell


def print_rerank(result: dict[str, Any]) -> None:
    rerank = result["rerank"]
    print(f"\nre-ranking on gptcache (correct/wrong/miss; {rerank['halves']})")
    for name, rows in rerank["counts"].items():
        for threshold, halves in rows.items():
            cells = "  ".join(f"{half}: {counts_cell(halves[half]):>12}" for half in SPLITS)
            print(f"  {name:24} {threshold:6} {cells}")
    print("  confidence of served hits, ROC AUC right vs wrong:")
    for name, rows in rerank["confidence_auc"].items():
        for threshold, halves in rows.items():
            cells = "  ".join(
                f"{half}: {'-' if halves[half] is None else f'{halves[half]:.3f}'}"
                for half in SPLITS
            )
            print(f"  {name:24} {threshold:6} {cells}")


def print_curve(result: dict[str, Any]) -> None:
    print(
        "\nthreshold curve, verifier on: gptcache c/w/m, by meaning c/w | "
        "fow questions served, traps (tune, all)"
    )
    for threshold, row in result["curve"].items():
        tune, everything, gpt = row["fow_tune"], row["fow_all"], row["gptcache"]
        print(
            f"  {threshold:6} {counts_cell(gpt):>12} {meaning_cell(gpt):>8} | "
            f"tune {share(tune['served'])} traps {share(tune['traps'])}  "
            f"all {share(everything['served'])} traps {share(everything['traps'])}"
        )
