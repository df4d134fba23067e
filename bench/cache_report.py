"""The tables of bench/cache.py: latencies, ratios to baselines and peers, HTTP, targets.

Ratios are Helios / reference at p50 (and p99): below 1 means Helios is faster. Targets
are the issue's, checked against p50 (throughput for HTTP) and printed as met or MISSED.
"""

from __future__ import annotations

from typing import Any

from cache_common import PACKAGED_WATERFALL

FLOOR = "redis: redis-py GET (asyncio, hiredis)"
GPTCACHE = "GPTCache get (same embedder, sqlite + faiss)"
L3_LOOKUP = "SemanticCache.lookup (embed + search + verify)"
L3_WATERFALL = "CacheManager.lookup (L2 miss -> L3)"

L2_RATIOS = [
    ("memory: ExactCache key_for + lookup", "memory: LiteLLM local Cache.async_get_cache"),
    ("memory: CacheManager.lookup", "memory: LiteLLM local acompletion (cache hit)"),
    ("redis: RedisBackend.get", FLOOR),
    ("redis: ExactCache key_for + lookup", FLOOR),
    ("redis: CacheManager.lookup", FLOOR),
    ("redis: ExactCache key_for + lookup", "redis: LiteLLM redis Cache.async_get_cache"),
    ("redis: CacheManager.lookup", "redis: LiteLLM redis acompletion (cache hit)"),
]
L2_TARGETS_MS = {
    "memory: ExactCache key_for + lookup": 0.05,
    "memory: CacheManager.lookup": 0.05,
    "redis: ExactCache key_for + lookup": 0.5,
    "redis: CacheManager.lookup": 0.5,
}
L3_TARGET_MS = 5.0
L3_TARGET_SIZE = 100_000
L3_TARGET_SPEEDUP = 8.0
HTTP_TARGET_RPS = 1500.0


def all_arms(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    arms: dict[str, dict[str, Any]] = dict(result.get("l2", {}).get("arms", {}))
    for size in result.get("l3", []):
        arms.update(size["arms"])
    return arms


def _ratio(a: dict[str, Any] | None, b: dict[str, Any] | None, key: str) -> float | None:
    if not a or not b or not a.get(key) or not b.get(key):
        return None
    return float(a[key] / b[key])


def ratios(result: dict[str, Any]) -> list[dict[str, Any]]:
    arms = all_arms(result)
    pairs = list(L2_RATIOS)
    for size in result.get("l3", []):
        prefix = f"L3 {size['size'] // 1000}k"
        pairs += [(f"{prefix}: {L3_LOOKUP}", f"{prefix}: {GPTCACHE}")]
        pairs += [(f"{prefix}: {L3_WATERFALL}", f"{prefix}: {GPTCACHE}")]
        pairs += [(f"{prefix}: {L3_WATERFALL}", f"{prefix}: {PACKAGED_WATERFALL}")]
    rows = []
    for ours, theirs in pairs:
        mine, other = arms.get(ours), arms.get(theirs)
        row: dict[str, Any] = {
            "helios": ours,
            "reference": theirs,
            "helios_p50_ms": mine.get("p50_ms") if mine else None,
            "reference_p50_ms": other.get("p50_ms") if other else None,
            "ratio_p50": _ratio(mine, other, "p50_ms"),
            "ratio_p99": _ratio(mine, other, "p99_ms"),
        }
        if mine and other and "rest" in mine and "rest" in other:
            # without the embedding, which both spend in the same function
            row["ratio_rest_p50"] = _ratio(mine["rest"], other["rest"], "p50_ms")
        rows.append(row)
    return rows


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    arms = all_arms(result)
    rows = []
    for name, limit in L2_TARGETS_MS.items():
        if name in arms:
            value = arms[name]["p50_ms"]
            rows.append(_target(f"{name} p50", f"<= {limit} ms", value, value <= limit, "ms"))
    for size in result.get("l3", []):
        if size["size"] != L3_TARGET_SIZE:
            continue
        for arm in (L3_LOOKUP, L3_WATERFALL):
            value = size["arms"][f"L3 100k: {arm}"]["p50_ms"]
            ok = value <= L3_TARGET_MS
            rows.append(_target(f"L3 100k: {arm} p50", f"<= {L3_TARGET_MS} ms", value, ok, "ms"))
            peer = size["arms"].get(f"L3 100k: {GPTCACHE}")
            if peer:  # the same run's GPTCache with the same embedder
                times = peer["p50_ms"] / value
                goal = f">= {L3_TARGET_SPEEDUP:g}x GPTCache"
                met = times >= L3_TARGET_SPEEDUP
                rows.append(_target(f"L3 100k: {arm} vs GPTCache", goal, times, met, "x"))
    for name, run in result.get("http", {}).get("runs", {}).items():
        if run["scenario"] == "L2 hit" and run["concurrency"] > 1:
            value = run["requests_per_s"]
            ok = value >= HTTP_TARGET_RPS and run["counts"]["errors"] == 0
            rows.append(_target(f"HTTP {name}", f">= {HTTP_TARGET_RPS:,.0f} /s", value, ok, "/s"))
    return rows


def _target(what: str, goal: str, value: float, met: bool, unit: str) -> dict[str, Any]:
    return {"what": what, "target": goal, "value": value, "unit": unit, "met": met}


# -- printing ---------------------------------------------------------------------------
def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.4f}" if value < 0.1 else f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _x(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _outcomes(stats: dict[str, Any]) -> str:
    counts = stats.get("outcomes")
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) if counts else ""


def print_latencies(result: dict[str, Any]) -> None:
    print("\nIn-process latency (ms; 'embed' / 'rest': the same calls split at the embedder)\n")
    print("| measurement | n | p50 | p99 | embed p50 | rest p50 | outcomes |")
    print("|---|---|---|---|---|---|---|")
    for name, stats in all_arms(result).items():
        inner, rest = stats.get("inner", {}), stats.get("rest", {})
        print(
            f"| {name} | {stats['n']} | {_ms(stats.get('p50_ms'))} | {_ms(stats.get('p99_ms'))} "
            f"| {_ms(inner.get('p50_ms'))} | {_ms(rest.get('p50_ms'))} | {_outcomes(stats)} |"
        )


def print_ratios(result: dict[str, Any]) -> None:
    print("\nRatios, Helios / reference (below 1: Helios faster)\n")
    print("| Helios | reference | Helios p50 | ref. p50 | ratio p50 | ratio p99 | ratio rest |")
    print("|---|---|---|---|---|---|---|")
    for row in result["ratios"]:
        print(
            f"| {row['helios']} | {row['reference']} | {_ms(row['helios_p50_ms'])} | "
            f"{_ms(row['reference_p50_ms'])} | {_x(row['ratio_p50'])} | "
            f"{_x(row['ratio_p99'])} | {_x(row.get('ratio_rest_p50'))} |"
        )


def print_fills(result: dict[str, Any]) -> None:
    if not result.get("l3"):
        return
    print(
        "\nL3 index fill (s). Each index holds the real questions (embedded) and RANDOM UNIT "
        "VECTORS for the rest (HNSW search cost depends on size, not content): the real ones "
        "stored (embedding included), 2,000 random ones added one at a time, the rest written "
        "as rows and taken in at once, the index closed (graph saved) and opened again; "
        "GPTCache gets the same entries through its import_data\n"
    )
    print(
        "| entries | real stored | add() one at a time | rows written | taken in | close "
        "| open | GPTCache real | GPTCache bulk |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for size in result["l3"]:
        fill, theirs = size["fill_s"], size["gptcache_fill_s"]
        per_add = 1000 * fill["add_s"] / max(1, fill["add_entries"])
        print(
            f"| {size['entries']:,} | {fill['real_s']:.1f} ({fill['real_entries']}) | "
            f"{fill['add_s']:.1f} ({fill['add_entries']:,}; {per_add:.2f} ms each) | "
            f"{fill['rows_written_s']:.1f} | {fill['catch_up_s']:.1f} | {fill['close_s']:.1f} | "
            f"{fill['open_s']:.2f} | {_x(theirs.get('real_s'))} | {_x(theirs.get('bulk_s'))} |"
        )


def http_vs_floors(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Helios's loaded runs as a fraction of each floor's requests/s (same connections)."""
    runs = result.get("http", {}).get("runs", {})
    floors = {run["server"]: run for run in runs.values() if run["scenario"] == "floor"}
    rows = []
    for name, run in runs.items():
        if run["server"] != "helios" or run["concurrency"] == 1:
            continue
        row: dict[str, Any] = {"run": name, "requests_per_s": run["requests_per_s"]}
        for floor, base in floors.items():
            if base["concurrency"] == run["concurrency"]:
                row[f"of {floor}"] = run["requests_per_s"] / base["requests_per_s"]
        rows.append(row)
    return rows


def print_http(result: dict[str, Any]) -> None:
    http = result.get("http")
    if not http:
        return
    server = http["server"]
    print(
        f"\nHTTP /lookup, uvicorn 1 worker ({server['http']}, {server['loop']}, no access "
        f"log), answers of {http['answer_bytes']:,} bytes on an L2 hit; CPU in cores over the "
        "measured window\n"
    )
    print("| scenario | req/s | p50 ms | p99 ms | answered by | server CPU | load-gen CPU |")
    print("|---|---|---|---|---|---|---|")
    for name, run in http["runs"].items():
        counts = run["counts"]
        layers = ", ".join(f"{k} {counts[k]:,}" for k in ("L2", "L3", "miss") if counts[k])
        if run["scenario"] == "floor":
            layers = "fixed answer"
        if counts["errors"]:
            layers += f", errors {counts['errors']:,}"
        print(
            f"| {name} | {run['requests_per_s']:,.0f} | {_ms(run['p50_ms'])} | "
            f"{_ms(run['p99_ms'])} | {layers} | {run['server_cpu']:.2f} | "
            f"{run['client_cpu']:.2f} |"
        )
    for row in result.get("http_vs_floors", []):
        shares = ", ".join(f"{v:.0%} {k}" for k, v in row.items() if k.startswith("of "))
        print(f"\n{row['run']}: {row['requests_per_s']:,.0f} req/s = {shares}")


def _first(values: list[float] | None) -> str:
    return f"{values[0]:.2f}" if values else "?"


def print_report(result: dict[str, Any]) -> None:
    machine, env = result["machine"], result["environment"]
    load = result.get("load_average", {})
    print(
        f"\n{machine['cpu']}, {machine['cpus']} CPUs, Python {machine['python']}; "
        f"OMP_NUM_THREADS={env['OMP_NUM_THREADS']} (faiss next to onnxruntime); "
        f"Redis: {env['redis']}; load average before/after: "
        f"{_first(load.get('before'))} / {_first(load.get('after'))}"
    )
    print_latencies(result)
    print_ratios(result)
    print_fills(result)
    print_http(result)
    unavailable = dict(result.get("l2", {}).get("unavailable", {}))
    for size in result.get("l3", []):
        unavailable.update(size["unavailable"])
    if unavailable:
        print("\nNot measured\n")
        for what, why in unavailable.items():
            print(f"- {what}: {why}")
    print("\nTargets\n")
    print("| target | measured | met |")
    print("|---|---|---|")
    for row in result["targets"]:
        units = {"/s": f"{row['value']:,.0f} /s", "x": f"{row['value']:.1f}x"}
        value = units.get(row["unit"], f"{row['value']:.4f} ms")
        print(f"| {row['what']} {row['target']} | {value} | {'met' if row['met'] else 'MISSED'} |")
