"""Routing cost: the economic router vs sending everything to the strong tier.

A seeded mixed workload (default 1,000 requests) is drawn from five templates, each with its
own prompt and reply lengths (token counts drawn from ranges typical of the task):

=================  ======  ==============  ===============  ================================
template           share   prompt tokens   output tokens    personas / task types
=================  ======  ==============  ===============  ================================
factual question   30%     10-40           20-150           none / factual, general
summarisation      20%     600-4,000       150-500          none, thesis / summarisation
coding task        20%     80-900          300-1,500        none, thesis / code
maths problem      15%     30-250          200-1,200        thesis, antithesis / math
analytical essay   15%     150-1,200       1,500-4,000      antithesis, synthesis, judge /
                                                            analysis, reasoning
=================  ======  ==============  ===============  ================================

Each request is routed by the runtime's router (``runtime.router.decide()``; no model is
called) with the default router settings and tiers (strong: opus, fast: sonnet, local:
local). The router only chooses among models that could run here, so the settings give
Anthropic a placeholder key (never sent: nothing is called); the local tier needs the
packaged model installed, and the result records which tiers were ready. The ledger is off,
so no model-health history from earlier runs steers a decision. Its cost is the
catalogue price of the routed tier's model for the drawn token counts; the baseline prices
every request on the strong model. A second scenario prices the local tier at the fast
model (a deployment without a local model), since local calls cost nothing here and would
otherwise dominate the ratio. Quality is not measured: this is the cost side only.

Every run happens in a temporary ``HELIOS_DATA_DIR`` (bench/common.py).

Run: ``.venv/bin/python bench/routing_cost.py [--requests N] [--seed S] [--out PATH]``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import machine, temporary_data_dir, write_result
from helios.catalog import Tier
from helios.config.settings import Settings
from helios.messages import CallContext, Request, SamplingParams, Usage
from helios.runtime import Runtime

RESULTS = Path(__file__).parent / "results" / "routing_cost.json"
TIERS: dict[Tier, str] = {"strong": "opus", "fast": "sonnet", "local": "local"}

_FILLER = (
    "The quarterly report covers revenue, churn, hiring and the supply chain across the "
    "three regions, with notes from each team lead and the board's comments. "
)
_CODE = (
    "```python\ndef load(path):\n    with open(path) as f:\n        rows = [r.split(',') for r"
    " in f]\n    return {r[0]: r[1:] for r in rows}\n```\n"
)
_TOPICS = ("remote work", "carbon taxes", "nuclear power", "open-source AI", "urban cycling")


@dataclass(frozen=True)
class Job:
    template: str
    request: Request
    input_tokens: int
    output_tokens: int


def _pad(text: str, tokens: int, filler: str) -> str:
    """``text`` followed by filler up to about ``tokens`` tokens (4 characters each)."""
    missing = max(0, tokens * 4 - len(text))
    return text + (filler * (missing // len(filler) + 1))[:missing]


def _job(rng: random.Random) -> Job:
    kind = rng.choices(
        ["factual", "summary", "coding", "maths", "essay"], weights=[30, 20, 20, 15, 15]
    )[0]
    topic = rng.choice(_TOPICS)
    if kind == "factual":
        tokens, out = rng.randint(10, 40), rng.randint(20, 150)
        prompt = _pad(f"What year did {topic} first become common in Europe?", tokens, " Briefly.")
        request = Request.of(prompt, task_type=rng.choice(["factual", "general"]))
    elif kind == "summary":
        tokens, out = rng.randint(600, 4000), rng.randint(150, 500)
        prompt = _pad("Summarise the following notes in five bullet points:\n", tokens, _FILLER)
        request = Request.of(
            prompt,
            task_type="summarisation",
            context=CallContext(persona=rng.choice([None, "thesis"])),
        )
    elif kind == "coding":
        tokens, out = rng.randint(80, 900), rng.randint(300, 1500)
        ask = rng.choice(
            ["Refactor this loader and add unit tests.", "Debug this function: it fails on "
             "empty lines.", "Implement a streaming version of this function."]
        )  # fmt: skip
        prompt = _pad(f"{ask}\n{_CODE}", tokens, _CODE)
        request = Request.of(
            prompt, task_type="code", context=CallContext(persona=rng.choice([None, "thesis"]))
        )
    elif kind == "maths":
        tokens, out = rng.randint(30, 250), rng.randint(200, 1200)
        a, b = rng.randint(2, 9), rng.randint(10, 99)
        prompt = _pad(
            f"Solve the equation {a}x + {b} = {a * b} and prove the solution is unique; then "
            f"compute the integral of {a}x^2 from 0 to {b}.",
            tokens,
            " Show each step.",
        )
        request = Request.of(
            prompt,
            task_type="math",
            context=CallContext(persona=rng.choice(["thesis", "antithesis"])),
        )
    else:
        tokens, out = rng.randint(150, 1200), rng.randint(1500, 4000)
        prompt = _pad(
            f"Write an in-depth essay on {topic}: why it matters, compare the main positions "
            "and weigh the trade-offs step by step.\n",
            tokens,
            _FILLER,
        )
        request = Request.of(
            prompt,
            task_type=rng.choice(["analysis", "reasoning"]),
            params=SamplingParams(max_tokens=4096),
            context=CallContext(persona=rng.choice(["antithesis", "synthesis", "judge"])),
        )
    return Job(kind, request, tokens, out)


def workload(requests: int, seed: int) -> list[Job]:
    rng = random.Random(seed)
    return [_job(rng) for _ in range(requests)]


def router_settings() -> Settings:
    return Settings.model_validate(
        {
            "tiers": TIERS,
            # readiness only: the router passes over a provider without a key
            "providers": {"anthropic": {"api_key": "bench-placeholder-never-sent"}},
            "cache": {"enabled": False},
            "ledger": {"enabled": False},
        }
    )


async def simulate(requests: int, seed: int) -> dict[str, Any]:
    async with Runtime.open(router_settings()) as runtime:
        return route_all(runtime, requests, seed)


def route_all(runtime: Runtime, requests: int, seed: int) -> dict[str, Any]:
    router, catalog, registry = runtime.router, runtime.catalog, runtime.registry
    entries = {tier: catalog.get(spec) for tier, spec in TIERS.items()}
    ready = {tier: registry.unready(spec) or "ready" for tier, spec in TIERS.items()}
    jobs = workload(requests, seed)
    strong_cost = routed_cost = no_local_cost = 0.0
    tiers: Counter[str] = Counter()
    by_template: dict[str, Counter[str]] = {}
    cost_by_tier: Counter[str] = Counter()
    started = time.perf_counter()
    for job in jobs:
        route = router.decide(job.request.with_model("auto"))
        assert route.tier is not None
        usage = Usage(input_tokens=job.input_tokens, output_tokens=job.output_tokens)
        cost = entries[route.tier].cost(usage)
        strong_cost += entries["strong"].cost(usage)
        routed_cost += cost
        no_local_cost += entries["fast" if route.tier == "local" else route.tier].cost(usage)
        tiers[route.tier] += 1
        cost_by_tier[route.tier] += cost
        by_template.setdefault(job.template, Counter())[route.tier] += 1
    decide_s = time.perf_counter() - started
    return {
        "benchmark": "routing_cost",
        "requests": requests,
        "seed": seed,
        "tiers": {tier: entries[tier].spec for tier in TIERS},
        "tiers_ready": ready,
        "strong_only_usd": round(strong_cost, 4),
        "routed_usd": round(routed_cost, 4),
        "routed_ratio": round(routed_cost / strong_cost, 4),
        "routed_no_local_usd": round(no_local_cost, 4),
        "routed_no_local_ratio": round(no_local_cost / strong_cost, 4),
        "share_by_tier": {t: round(tiers[t] / requests, 4) for t in ("strong", "fast", "local")},
        "cost_by_tier_usd": {t: round(cost_by_tier[t], 4) for t in ("strong", "fast", "local")},
        "tiers_by_template": {name: dict(counts) for name, counts in sorted(by_template.items())},
        "decide_us_per_request": round(decide_s / requests * 1e6, 1),
        "machine": machine(),
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        f"routing cost: {result['requests']} requests, seed {result['seed']}",
        f"{'scenario':<28}{'cost $':>12}{'vs strong':>12}",
        f"{'all on strong (opus)':<28}{result['strong_only_usd']:>12.2f}{1.0:>12.3f}",
        f"{'routed':<28}{result['routed_usd']:>12.2f}{result['routed_ratio']:>12.3f}",
        f"{'routed, local priced as fast':<28}{result['routed_no_local_usd']:>12.2f}"
        f"{result['routed_no_local_ratio']:>12.3f}",
        "share of calls: "
        + ", ".join(f"{tier} {share:.1%}" for tier, share in result["share_by_tier"].items()),
    ]
    for name, counts in result["tiers_by_template"].items():
        lines.append(f"  {name:<10} " + ", ".join(f"{t} {n}" for t, n in sorted(counts.items())))
    lines.append(f"decide(): {result['decide_us_per_request']} us per request")
    for tier, state in result["tiers_ready"].items():
        if state != "ready":
            lines.append(f"NOT READY, routed around: {tier} ({state})")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS, help="results file")
    args = parser.parse_args()
    with temporary_data_dir():
        result = asyncio.run(simulate(args.requests, args.seed))
    print(table(result))
    write_result(args.out, result)


if __name__ == "__main__":
    main()
