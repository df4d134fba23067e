"""bench/gateway.py's figures: latency summaries per arm, added latency paired by request,
the Helios/LiteLLM ratios, the targets' verdicts and the printed tables."""

from __future__ import annotations

import statistics
from typing import Any

from gateway_load import Block
from helios.percentiles import percentile

KINDS = {"plain": ("total",), "stream": ("ttft", "total")}
KEPT_UP = 0.95
"""An arm kept up when it answered at least this share of the offered rate."""
TARGET_P50_MS, TARGET_P99_MS, TARGET_RATIO, TARGET_HITS = 1.0, 5.0, 0.2, 3000.0
TARGET_RATE = 200.0


def p99(values: list[float]) -> float:
    value = percentile(values, 0.99)
    assert value is not None  # every block holds at least one request
    return value


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": statistics.median(values),
        "p99": p99(values),
        "mean": statistics.fmean(values),
        "max": max(values),
    }


def figures(blocks: dict[str, list[Block]], kind: str, rate: float) -> dict[str, Any]:
    """Per arm: latency from the due time (and service time from the send), CPU per call;
    per non-direct arm: what it adds to the direct arm, paired and as percentile gaps."""
    out: dict[str, Any] = {}
    latency: dict[str, dict[str, list[float]]] = {}
    for name, arm_blocks in blocks.items():
        samples = [s for block in arm_blocks for s in block.samples]
        latency[name] = {m: [s.latency_ms(m) for s in samples] for m in KINDS[kind]}
        requests = len(samples)
        answered_per_s = requests / sum(b.seconds for b in arm_blocks)
        out[name] = {
            "latency_ms": {m: summary(v) for m, v in latency[name].items()},
            "service_ms": {
                m: summary([s.latency_ms(m, from_due=False) for s in samples]) for m in KINDS[kind]
            },
            "late_ms": summary([(s.sent_ns - s.due_ns) / 1e6 for s in samples]),
            "server_cpu_ms_per_call": 1000 * sum(b.server_cpu_s for b in arm_blocks) / requests,
            "answered_per_s": answered_per_s,
            "kept_up": answered_per_s >= KEPT_UP * rate,
            "server_cores": sum(b.server_cpu_s for b in arm_blocks)
            / sum(b.seconds for b in arm_blocks),
            "max_in_flight": max(b.max_in_flight for b in arm_blocks),
            "connections_opened": sum(b.connections_opened for b in arm_blocks),
        }
    direct = latency["direct"]
    for name in blocks:
        if name == "direct":
            continue
        added: dict[str, Any] = {}
        for metric in KINDS[kind]:
            mine, base = latency[name][metric], direct[metric]
            paired = [a - b for a, b in zip(mine, base, strict=True)]
            added[metric] = {
                "paired_p50": statistics.median(paired),
                "paired_p99": p99(paired),
                "p50_gap": statistics.median(mine) - statistics.median(base),
                "p99_gap": p99(mine) - p99(base),
            }
        out[name]["added_ms"] = added
    return out


def ratios(miss: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind, arms in miss.items():
        if "helios" in arms and "litellm" in arms:
            out[kind] = {
                metric: arms["helios"]["added_ms"][metric]["paired_p50"]
                / max(arms["litellm"]["added_ms"][metric]["paired_p50"], 1e-9)
                for metric in KINDS[kind]
            }
    return out


def targets(
    miss: dict[str, Any], ratio: dict[str, Any], hits: dict[str, Any], rate: float
) -> list[Any]:
    """Each target's verdict; a note where an arm fell behind the rate, whose figure is
    then mostly queueing rather than the work of one call. The latency targets are set at
    TARGET_RATE: at another rate they are shown, not judged."""
    rows: list[dict[str, Any]] = []
    judged_rate = rate == TARGET_RATE

    def row(
        name: str, value: float | None, limit: float, note: str = "", *, higher: bool = False
    ) -> None:
        met = None if value is None else (value >= limit if higher else value <= limit)
        if not judged_rate and not higher:
            met, note = None, f"at {rate:g} req/s; the target is set at {TARGET_RATE:g}"
        rows.append({"target": name, "measured": value, "limit": limit, "met": met, "note": note})

    for kind, arms in miss.items():
        behind = [n for n in ("helios", "litellm") if n in arms and not arms[n]["kept_up"]]
        helios_note = "Helios fell behind the rate" if "helios" in behind else ""
        ratio_note = f"{' and '.join(behind)} fell behind the rate" if behind else ""
        for metric in KINDS[kind]:
            added = arms["helios"]["added_ms"][metric]
            where = f"{kind} {metric}"
            row(
                f"Helios adds p50 <= 1 ms ({where})",
                added["paired_p50"],
                TARGET_P50_MS,
                helios_note,
            )
            row(f"Helios adds p99 <= 5 ms ({where})", added["p99_gap"], TARGET_P99_MS, helios_note)
            value = ratio.get(kind, {}).get(metric)
            row(f"Helios/LiteLLM added p50 <= 0.2 ({where})", value, TARGET_RATIO, ratio_note)
    plain = hits.get("helios: L2 hit, non-streamed")
    value = plain["requests_per_s"] if plain else None
    row("L2 hits >= 3,000 req/s", value, TARGET_HITS, higher=True)
    return rows


def report(result: dict[str, Any]) -> None:
    print(f"\nMiss arms at {result['config']['rate']:g} req/s; milliseconds from the due time.")
    for arm in result["arms"].values():
        if arm["unavailable"]:
            print(f"  {arm['label']}: unavailable ({arm['unavailable']})")
    head = (
        "| phase | arm | n | p50 | p99 | added p50 (paired) | added p50 (gap) | added p99 (gap) "
        "| service p50 | late p99 | server CPU ms/call | answered/s | max in flight |"
    )
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for kind, arms in result["miss"].items():
        for metric in KINDS[kind]:
            for name, arm in arms.items():
                lat = arm["latency_ms"][metric]
                added = arm.get("added_ms", {}).get(metric)
                cells = [
                    f"{kind} {metric}",
                    result["arms"][name]["label"],
                    str(lat["n"]),
                    f"{lat['p50']:.3f}",
                    f"{lat['p99']:.3f}",
                    f"**{added['paired_p50']:.3f}**" if added else "—",
                    f"{added['p50_gap']:.3f}" if added else "—",
                    f"{added['p99_gap']:.3f}" if added else "—",
                    f"{arm['service_ms'][metric]['p50']:.3f}",
                    f"{arm['late_ms']['p99']:.3f}",
                    f"{arm['server_cpu_ms_per_call']:.2f}",
                    f"{arm['answered_per_s']:.0f}" + ("" if arm["kept_up"] else " (fell behind)"),
                    str(arm["max_in_flight"]),
                ]
                print("| " + " | ".join(cells) + " |")
    print(
        "added: arm minus direct; paired = median over requests of the difference (the same\n"
        "prompt in the same slot of the same round), gap = difference of the percentiles.\n"
        "service: from the actual send; late: send after its due time; answered/s below\n"
        f"{KEPT_UP:.0%} of the rate = the server fell behind (its latency is then mostly queueing)."
    )
    for kind, by_metric in result["ratio_helios_litellm"].items():
        arms = result["miss"][kind]
        behind = [n for n in ("helios", "litellm") if not arms[n]["kept_up"]]
        note = f" ({' and '.join(behind)} fell behind)" if behind else ""
        for metric, value in by_metric.items():
            print(f"Helios/LiteLLM added p50 (paired), {kind} {metric}: {value:.3f}{note}")
    if result["hits"]:
        print("\nL2 hits, closed loop (CPU in cores over the window):")
        print("| scenario | connections | req/s | p50 | p99 | server CPU | client CPU |")
        print("|---|---|---|---|---|---|---|")
        for name, hit in result["hits"].items():
            print(
                f"| {name} | {hit['connections']} | {hit['requests_per_s']:,.0f} | "
                f"{hit['p50_ms']:.3f} | {hit['p99_ms']:.3f} | {hit['server_cpu']:.2f} | "
                f"{hit['client_cpu']:.2f} |"
            )
    print("\nTargets:")
    for row in result["targets"]:
        value = "not measured" if row["measured"] is None else f"{row['measured']:.3f}"
        verdict = {True: "met", False: "MISSED", None: "not judged"}[row["met"]]
        queueing = row["note"] and row["note"].endswith("fell behind the rate")
        note = f" ({row['note']}{': mostly queueing' if queueing else ''})" if row["note"] else ""
        print(f"  {row['target']}: {value} -> {verdict}{note}")


# -- the run ---------------------------------------------------------------------------------
