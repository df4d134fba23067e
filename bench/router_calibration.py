"""Router calibration: today's router (the baseline) against the calibrated one, in one run.

Three measurements, both routers through the same ``EconomicRouter.decide()`` of one
runtime (tiers opus / sonnet / local, as in ``routing_cost.py``); the baseline differs only
in its scoring function, a frozen copy of the one before calibration (router_baseline.py),
and in probing each tier's readiness on every call, as it did (``readiness_cache_s: 0``):

1. **Agreement** with the labelled set of ``bench/data/`` (358 prompts, the tier each
   should go to; see ``bench/data/README.md``), on its tuning half and on its held-out half
   separately; only the tuning half was looked at while the cues and weights were set.
   The tier compared is the one the score picks (``scored_tier``), before readiness.
   ``strict`` counts a local route of a fast-labelled prompt as wrong (the local model
   cannot answer it); ``local as fast`` counts it as right.
2. **Cost** against everything on the strong tier, on the seeded workload of
   ``routing_cost.py`` (1,000 requests, seed 7), priced from the catalogue; local calls
   cost nothing. Also the lowest ratio any policy can reach on that workload while it keeps
   the essays (long-form analysis) on the strong tier, everything else on fast or local,
   and, as a second scenario, the ratio when the fast tier is Claude Haiku 5.5 (same routes,
   priced with ``tiers.fast: haiku``).
3. **decide() latency**, per call, short prompts (the labelled prompts without attached
   material) and long ones (the workload's requests of 1,000 prompt tokens or more),
   baseline and calibrated alternating call by call, after a warm-up: p50 and p99 of the
   wall time and of the thread's CPU time (on a shared machine the wall time also counts
   the time other processes held the core).

Run: ``.venv/bin/python bench/router_calibration.py [--rounds N] [--out PATH]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from common import machine, temporary_data_dir, write_result
from helios.catalog import Catalog
from helios.governance.router import EconomicRouter
from helios.messages import Request, Usage
from helios.percentiles import percentile
from helios.runtime import Runtime
from router_baseline import baseline_score
from router_data import HALVES, Labelled, load
from routing_cost import TIERS, Job, router_settings, workload

RESULTS = Path(__file__).parent / "results" / "router_calibration.json"
ROUTERS = ("baseline", "calibrated")
LONG_PROMPT_TOKENS = 1000
HAIKU = "haiku"  # a cheaper fast tier, priced as a second scenario


def agreement(router: EconomicRouter, rows: Sequence[Labelled]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for half in HALVES:
        picked = [
            (row, router.decide(row.request).scored_tier) for row in rows if row.split == half
        ]
        strict = sum(tier == row.tier for row, tier in picked)
        lenient = sum(("fast" if tier == "local" else tier) == row.tier for row, tier in picked)
        kinds: dict[str, list[int]] = {}
        for row, tier in picked:
            kinds.setdefault(row.kind, [0, 0])[0] += tier == row.tier
            kinds[row.kind][1] += 1
        result[half] = {
            "prompts": len(picked),
            "strict": round(strict / len(picked), 4),
            "local_as_fast": round(lenient / len(picked), 4),
            "confusion": {
                f"{want}->{got}": n
                for (want, got), n in sorted(Counter((r.tier, t) for r, t in picked).items())
            },
            "by_kind": {kind: f"{ok}/{n}" for kind, (ok, n) in sorted(kinds.items())},
        }
    return result


def cost(
    router: EconomicRouter, catalog: Catalog, jobs: Sequence[Job], fast: str = TIERS["fast"]
) -> dict[str, Any]:
    """Routed cost against all-strong; ``fast`` prices the fast tier as another model (the
    route does not depend on it: both are ready)."""
    entries = {tier: catalog.get(spec) for tier, spec in {**TIERS, "fast": fast}.items()}
    strong = routed = 0.0
    shares: Counter[str] = Counter()
    by_template: dict[str, Counter[str]] = {}
    for job in jobs:
        tier = router.decide(job.request.with_model("auto")).scored_tier
        assert tier is not None
        usage = Usage(input_tokens=job.input_tokens, output_tokens=job.output_tokens)
        strong += entries["strong"].cost(usage)
        routed += entries[tier].cost(usage)
        shares[tier] += 1
        by_template.setdefault(job.template, Counter())[tier] += 1
    return {
        "strong_only_usd": round(strong, 4),
        "routed_usd": round(routed, 4),
        "ratio": round(routed / strong, 4),
        "share_by_tier": {t: round(shares[t] / len(jobs), 4) for t in ("strong", "fast", "local")},
        "tiers_by_template": {name: dict(c) for name, c in sorted(by_template.items())},
    }


def floor_ratio(catalog: Catalog, jobs: Sequence[Job], local_template: str | None) -> float:
    """The cheapest ratio with essays on strong, ``local_template`` on local (free) and
    every other request on fast."""
    entries = {tier: catalog.get(spec) for tier, spec in TIERS.items()}
    strong = cheapest = 0.0
    for job in jobs:
        usage = Usage(input_tokens=job.input_tokens, output_tokens=job.output_tokens)
        strong += entries["strong"].cost(usage)
        if job.template == "essay":
            cheapest += entries["strong"].cost(usage)
        elif job.template != local_template:
            cheapest += entries["fast"].cost(usage)
    return round(cheapest / strong, 4)


def latency(
    routers: dict[str, EconomicRouter], groups: dict[str, list[Request]], rounds: int
) -> dict[str, Any]:
    """Per call: wall time, and this thread's CPU time (less moved by other processes
    sharing the cores, though not immune to them: caches, frequency)."""
    result: dict[str, Any] = {}
    for group, requests in groups.items():
        wall: dict[str, list[float]] = {name: [] for name in routers}
        cpu: dict[str, list[float]] = {name: [] for name in routers}
        for warm_up in (True, False):
            for _ in range(1 if warm_up else rounds):
                for request in requests:
                    for name, router in routers.items():
                        started, started_cpu = time.perf_counter_ns(), time.thread_time_ns()
                        router.decide(request)
                        ended_cpu, ended = time.thread_time_ns(), time.perf_counter_ns()
                        if not warm_up:
                            wall[name].append((ended - started) / 1000)
                            cpu[name].append((ended_cpu - started_cpu) / 1000)
        figures: dict[str, Any] = {
            "prompts": len(requests),
            "calls_per_router": len(wall["baseline"]),
        }
        for name in routers:
            figures[name] = {
                "p50_us": round(_p(wall[name], 0.5), 1),
                "p99_us": round(_p(wall[name], 0.99), 1),
                "cpu_p50_us": round(_p(cpu[name], 0.5), 1),
                "cpu_p99_us": round(_p(cpu[name], 0.99), 1),
            }
        for clock in ("p50_us", "cpu_p50_us"):
            ratio = figures["calibrated"][clock] / figures["baseline"][clock]
            figures[clock.replace("_us", "_ratio")] = round(ratio, 3)
        result[group] = figures
    return result


def _p(values: list[float], q: float) -> float:
    value = percentile(values, q)
    assert value is not None
    return value


def measure(runtime: Runtime, rounds: int) -> dict[str, Any]:
    calibrated = runtime.router
    # today's router probed readiness on every call: no readiness cache
    probe_every_call = calibrated.settings.model_copy(update={"readiness_cache_s": 0.0})
    baseline = EconomicRouter(
        runtime.registry, runtime.catalog, TIERS, probe_every_call, assess=baseline_score
    )
    routers = {"baseline": baseline, "calibrated": calibrated}
    rows = load()
    jobs = workload(1000, 7)
    short = [row.request for row in rows if len(row.request.messages[0].content) < 400]
    long = [
        job.request.with_model("auto") for job in jobs if job.input_tokens >= LONG_PROMPT_TOKENS
    ]
    run: Callable[[EconomicRouter], dict[str, Any]] = lambda router: {  # noqa: E731
        "agreement": agreement(router, rows),
        "cost": cost(router, runtime.catalog, jobs),
        "cost_fast_as_haiku": cost(router, runtime.catalog, jobs, HAIKU)["ratio"],
    }
    return {
        "benchmark": "router_calibration",
        "labelled_prompts": len(rows),
        "workload": {"requests": len(jobs), "seed": 7, "tiers": dict(TIERS)},
        **{name: run(router) for name, router in routers.items()},
        "cost_floor_essays_on_strong": {
            "no_local": floor_ratio(runtime.catalog, jobs, None),
            "factual_on_local": floor_ratio(runtime.catalog, jobs, "factual"),
        },
        "load_average_before": os.getloadavg(),
        "decide_latency": latency(routers, {"short": short, "long": long}, rounds),
        "load_average_after": os.getloadavg(),
        "machine": machine(),
    }


async def simulate(rounds: int) -> dict[str, Any]:
    async with Runtime.open(router_settings()) as runtime:
        return measure(runtime, rounds)


def main() -> None:
    from router_calibration_report import table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5, help="timed passes over each group")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results file")
    args = parser.parse_args()
    with temporary_data_dir():
        result = asyncio.run(simulate(args.rounds))
    print(table(result))
    write_result(args.out, result)


if __name__ == "__main__":
    main()
