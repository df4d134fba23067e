"""L1 prompt caching across the dialectic personas: input dollars per run, on the simulator.

Each run is one dialectic task (``max_passes=2``, async thesis on, the defaults) over six
evidence passages of about 500 tokens each (~3,000 tokens), its personas on one model
served by the simulator's Anthropic or OpenAI protocol (``helios sim``, in process; its
cache follows each provider's rules: Anthropic's explicit breakpoints and per-model
minimums, OpenAI's automatic caching from 1,024 tokens). Arms, per model:

- ``l1_off``: today's persona layout, ``cache.prompt.enabled: false`` (no breakpoints, no
  ``prompt_cache_key``);
- ``l1_on``: the same layout with L1 on (the default);
- ``separate_prefixes``: L1 on, with the personas as they were before they shared a
  system prefix (``bench/data/personas_separate_prefixes.yaml``: evidence in each
  persona's user message, a system text per persona).

The simulator's replies are words that neither cite nor parse as JSON; a wrapper appends
`` [E1]`` to each synthesis so that the gate reaches the judge, whose reply then takes a
repair turn and fails: every run makes 8 calls (thesis, antithesis, then twice synthesis,
judge, judge repair), the same in every arm. The simulator is reset before each run and
every arm sends the same texts, so the arms differ only in what the cache did.

Input dollars are each call's uncached, cache-read and cache-write tokens at the
catalogue's prices. The ledger's L1 savings (``persona_llm_run.cost_saved_usd``) are
checked against that arithmetic: ``input $ (l1_off) - input $ (l1_on)`` per run.

Usage: .venv/bin/python bench/prompt_cache.py [--n 5] [--out bench/results/prompt_cache.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from common import machine, temporary_data_dir
from helios.catalog import Catalog, ModelEntry
from helios.config.settings import Settings
from helios.ledger.events import PersonaLLMRun
from helios.ledger.sink import MemorySink
from helios.messages import Chunk, Completion, Request, Usage
from helios.pipeline.dialectic import DialecticPipeline
from helios.pipeline.evidence import Evidence, Passage
from helios.providers.anthropic import create as create_anthropic
from helios.providers.base import Provider, complete_by_streaming
from helios.providers.openai import create as create_openai
from helios.runtime import Runtime
from helios.sim import SimConfig, SimServer

HERE = Path(__file__).parent
RESULTS = HERE / "results"
BEFORE = HERE / "data" / "personas_separate_prefixes.yaml"
MODELS = (
    "anthropic:claude-sonnet-5-5",
    "anthropic:claude-opus-5-5",
    "anthropic:claude-haiku-5-5",
    "openai:gpt-5.4",
    "openai:gpt-5-mini",
)
ARMS = ("l1_off", "l1_on", "separate_prefixes")
GOAL = "Run {i}: should a five-person startup split its monolith into microservices?"
_FACTS = (
    "Each service adds a deployment pipeline, dashboards, alerts and an on-call rotation.",
    "Latency between services added {n} ms to the median request in our measurements.",
    "A modular monolith keeps one deployable unit with strict internal module boundaries.",
    "Debugging a request that crossed {n} services took three times as long.",
    "Teams of fewer than ten engineers rarely staff the platform work that many services need.",
    "Service boundaries drawn before the domain settles are expensive to move later.",
    "Running {n} services on Kubernetes cost about 30 hours a month of platform work.",
    "Independent deployment pays off when teams block each other on a shared release train.",
)


def passage_text(index: int, chars: int = 2000) -> str:
    """About ``chars`` characters (``chars / 4`` simulator tokens) of varied prose."""
    sentences: list[str] = []
    k = 0
    while sum(len(s) + 1 for s in sentences) < chars:
        fact = _FACTS[(index + k) % len(_FACTS)]
        sentences.append(f"({index}.{k}) " + fact.format(n=index * 7 + k + 3))
        k += 1
    return " ".join(sentences)[:chars]


EVIDENCE = Evidence(
    passages=tuple(
        Passage(
            id=f"E{i}",
            source=f"docs/notes{i}.md",
            start_line=1,
            end_line=40,
            text=passage_text(i),
            score=1.0 - i / 10,
        )
        for i in range(1, 7)
    ),
    documents=6,
    chunks=24,
    from_cache=False,
    embedded_chunks=24,
    duration_s=0.0,
)


class FixedGatherer:
    async def gather(self, goal: str, documents: Sequence[object]) -> Evidence:
        return EVIDENCE


class CitingProvider(Provider):
    """The real adapter, with `` [E1]`` appended to each synthesis so the judge is reached."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.name = inner.name
        self.model = inner.model

    async def complete(self, request: Request) -> Completion:
        return await complete_by_streaming(self, request)

    async def stream(self, request: Request) -> AsyncIterator[Chunk]:
        cite = request.context.persona == "synthesis"
        async for chunk in self.inner.stream(request):
            if cite and (chunk.usage is not None or chunk.finish_reason is not None):
                yield Chunk(text=" [E1]")
                cite = False
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


def arm_settings(arm: str, model: str, base_url: str) -> Settings:
    personas: dict[str, Any] = {}
    if arm == "separate_prefixes":
        personas = yaml.safe_load(BEFORE.read_text(encoding="utf-8"))["personas"]
    return Settings.model_validate(
        {
            "default_model": model,
            "providers": {
                "anthropic": {"base_url": base_url, "api_key": "bench", "max_retries": 0},
                "openai": {"base_url": base_url + "/v1", "api_key": "bench", "max_retries": 0},
            },
            # cache.enabled switches every layer, so L2 stays on, in memory: a fresh store
            # per run, never a hit (checked); L3 is off so that no embedder loads.
            "cache": {
                "backend": "memory",
                "semantic": {"enabled": False},
                "prompt": {"enabled": arm != "l1_off"},
            },
            "ledger": {"enabled": False},
            "personas": personas,
            "orchestration": {"max_passes": 2},
        }
    )


def input_usd(usage: Usage, entry: ModelEntry) -> float:
    p = entry.prices
    return 1e-6 * (
        usage.input_tokens * p.input
        + usage.cache_read_tokens * p.cache_read
        + usage.cache_write_5m_tokens * p.cache_write_5m
        + usage.cache_write_1h_tokens * p.cache_write_1h
    )


class Usages:
    """Every call's usage, by the engine's observer hook."""

    def __init__(self) -> None:
        self.usages: list[Usage] = []

    def on_call(self, record: Any) -> None:
        if record.completion is None or record.completion.cache_layer is not None:
            raise SystemExit(f"not a provider call: {record.error or record.completion}")
        self.usages.append(record.completion.usage)


async def one_run(
    arm: str, model: str, sim: SimServer, catalog: Catalog, index: int
) -> dict[str, Any]:
    sim.state.reset()
    sink, usages = MemorySink(), Usages()
    settings = arm_settings(arm, model, sim.base_url)
    async with Runtime.open(settings, sink=sink, observers=[usages]) as runtime:
        for kind, create in (("anthropic", create_anthropic), ("openai", create_openai)):
            runtime.registry.register_factory(
                kind,
                lambda provider, name, s, create=create: CitingProvider(create(provider, name, s)),
            )
        pipeline = DialecticPipeline(
            runtime.engine, runtime.settings, FixedGatherer(), sink=runtime.sink
        )
        await pipeline.run(GOAL.format(i=index))
    provider, name = model.split(":", 1)
    entry = catalog.lookup(provider, name)
    assert entry is not None
    runs = sink.of_type(PersonaLLMRun)
    return {
        "calls": len(usages.usages),
        "input_tokens": sum(u.total_input_tokens for u in usages.usages),
        "cache_read_tokens": sum(u.cache_read_tokens for u in usages.usages),
        "cache_write_tokens": sum(u.cache_write_tokens for u in usages.usages),
        "input_usd": sum(input_usd(u, entry) for u in usages.usages),
        # every prompt token at the plain input price: what no prompt cache at all would bill
        "uncached_usd": 1e-6
        * entry.prices.input
        * sum(u.total_input_tokens for u in usages.usages),
        "ledger_saved_usd": sum(e.cost_saved_usd or 0.0 for e in runs),
    }


async def measure(n: int) -> dict[str, Any]:
    catalog = Catalog.load()
    results: dict[str, Any] = {}
    with SimServer(SimConfig(reply_tokens=60)) as sim:
        for model in MODELS:
            rows: dict[str, list[dict[str, Any]]] = {arm: [] for arm in ARMS}
            for i in range(n):
                for arm in ARMS:
                    rows[arm].append(await one_run(arm, model, sim, catalog, i))
            results[model] = summarise(rows)
    return results


def summarise(rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    def mean(arm: str, key: str) -> float:
        return statistics.fmean(row[key] for row in rows[arm])

    off = mean("l1_off", "input_usd")
    arms = {
        arm: {
            key: mean(arm, key)
            for key in (
                "calls",
                "input_tokens",
                "cache_read_tokens",
                "cache_write_tokens",
                "input_usd",
                "ledger_saved_usd",
            )
        }
        | {"vs_l1_off_pct": 100 * (1 - mean(arm, "input_usd") / off)}
        for arm in ARMS
    }
    # The ledger's savings against the catalogue arithmetic, run by run: what the same
    # prompts cost billed as plain input, less what they cost. Where the provider caches
    # only on request (Anthropic) that is also input $ with L1 off less input $ with it on.
    gaps = {
        arm: max(abs(r["uncached_usd"] - r["input_usd"] - r["ledger_saved_usd"]) for r in rows[arm])
        for arm in ARMS
    }
    across = max(
        abs((a["input_usd"] - b["input_usd"]) - b["ledger_saved_usd"])
        for a, b in zip(rows["l1_off"], rows["l1_on"], strict=True)
    )
    return {
        "arms": arms,
        "ledger_vs_arithmetic_max_gap_usd": gaps,
        "ledger_vs_off_minus_on_max_gap_usd": across,
        "runs": rows,
    }


def print_table(results: dict[str, Any]) -> None:
    print(
        "\n| model | arm | calls | input tokens | cache read | cache write | input $ / run "
        "| vs L1 off | ledger-reported L1 savings $ |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for model, result in results.items():
        for arm, s in result["arms"].items():
            print(
                f"| {model} | {arm} | {s['calls']:.0f} | {s['input_tokens']:.0f} | "
                f"{s['cache_read_tokens']:.0f} | {s['cache_write_tokens']:.0f} | "
                f"{s['input_usd']:.6f} | {-s['vs_l1_off_pct']:+.1f} % | "
                f"{s['ledger_saved_usd']:.6f} |"
            )
    print(
        "\n| model | ledger savings vs uncached $ - input $, largest gap (off / on / separate) "
        "| ledger savings (on) vs input $ (off) - input $ (on), largest gap |"
    )
    print("|---|---|---|")
    for model, result in results.items():
        gaps = " / ".join(f"{g:.1e}" for g in result["ledger_vs_arithmetic_max_gap_usd"].values())
        print(f"| {model} | {gaps} | {result['ledger_vs_off_minus_on_max_gap_usd']:.1e} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=5, help="runs per arm and model")
    parser.add_argument("--out", type=Path, default=RESULTS / "prompt_cache.json")
    args = parser.parse_args()
    with temporary_data_dir():
        results = asyncio.run(measure(args.n))
    payload = {
        "benchmark": "prompt_cache",
        "machine": machine(),
        "config": {
            "n": args.n,
            "models": MODELS,
            "arms": ARMS,
            "evidence_passages": len(EVIDENCE.passages),
            "evidence_sim_tokens": sum((len(p.text) + 3) // 4 for p in EVIDENCE.passages),
            "max_passes": 2,
        },
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print_table(results)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
