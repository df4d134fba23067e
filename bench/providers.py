"""Engine overhead vs direct SDK calls (cache miss and cache hit), and the local model.

Every part runs in a temporary ``HELIOS_DATA_DIR`` (bench/common.py), so no cache, ledger or
governor file of the user's is read or written, and Helios is assembled by ``Runtime.open``.

Part 1: the provider simulator runs in its own process (``helios sim``), so its work does not
share a GIL with the client. For each protocol (Anthropic, OpenAI, Gemini) the same streamed
request is made N times in each of three arms, interleaved with the order rotating every
round, so that drift hits every arm alike:

- ``direct``: the official SDK, its client configured as Helios configures its own;
- ``helios`` (the miss path): a runtime with the response cache off, so every call goes
  engine -> route -> adapter -> the same SDK -> the simulator;
- ``hit`` (the hit path): a second runtime with the cache on, L2 only (``cache.semantic``
  off, so no embedder loads; ``--hit-backend``, SQLite by default as in Helios's defaults),
  primed by one call: every timed call is an L2 hit replayed chunk by chunk.

TTFT is the time to the first text delta, total the time to the end of the stream, both
taken with the same timer outside the call. Reported per arm: p50, p99; for each Helios arm
against the direct one: ratios, the added milliseconds at p50 and the *paired* added
milliseconds (median of the per-round differences; target for the miss path: <= 1 ms p50).
The ledger is off in these arms (part 2 measures what recording costs).

Part 2: the engine alone, in process: an instant 32-chunk ``FunctionProvider`` served
through ``Runtime.open(..., providers=[...])``, iterated directly and through the engine
(cache and ledger off); then the same with the ledger on (its own temporary SQLite file),
so that the per-call cost of recording shows.

Part 3: the embedded llama.cpp model through the runtime (cache off): load time, TTFT and
tokens/s over a few prompts.

Usage: .venv/bin/python bench/providers.py [--n 300] [--local-n 8] [--skip-local]
    [--hit-backend sqlite|memory] [--out PATH]
Writes bench/results/providers.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
from google import genai
from google.genai import types as genai_types

from common import free_port, machine, start_simulator, temporary_data_dir
from helios import FunctionProvider, Request, SamplingParams, Settings
from helios.engine import Engine
from helios.percentiles import percentile
from helios.runtime import Runtime

RESULTS = Path(__file__).parent / "results" / "providers.json"
PROMPT = "Summarise the trade-offs of microservices for a five-person startup."
MAX_TOKENS = 64
ARMS = ("direct", "helios", "hit")
"""``helios`` is the miss path (cache off), ``hit`` the L2 hit path."""
METRICS = ("ttft", "total")
TARGET_ADDED_MS = 1.0
"""The miss path's target: what Helios adds to a call at p50 (paired)."""
SIMULATOR = "simulator"
Timed = Callable[[], Awaitable[tuple[float, float]]]
Sample = tuple[float, float, str]
"""TTFT (s), total (s), and who answered: the simulator or a cache layer."""
Call = Callable[[], Awaitable[Sample]]


async def timed_stream(
    chunks: AsyncIterator[Any], has_text: Callable[[Any], bool]
) -> tuple[float, float]:
    started = time.perf_counter()
    ttft: float | None = None
    async for item in chunks:
        if ttft is None and has_text(item):
            ttft = time.perf_counter() - started
    total = time.perf_counter() - started
    return (total if ttft is None else ttft), total


def direct_calls(base_url: str) -> dict[str, tuple[Timed, Callable[[], Awaitable[None]]]]:
    """One timed direct-SDK streaming call per protocol, and a closer for its client."""
    ant = anthropic.AsyncAnthropic(base_url=base_url, api_key="bench", max_retries=0)
    oai = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key="bench", max_retries=0)
    gem = genai.Client(api_key="bench", http_options=genai_types.HttpOptions(base_url=base_url))

    async def call_anthropic() -> tuple[float, float]:
        async def events() -> AsyncIterator[Any]:
            stream = await ant.messages.create(
                model="claude-sonnet-5-5",
                max_tokens=MAX_TOKENS,
                messages=[{"role": "user", "content": PROMPT}],
                stream=True,
            )
            async for event in stream:
                yield event

        return await timed_stream(
            events(),
            lambda e: e.type == "content_block_delta" and bool(getattr(e.delta, "text", "")),
        )

    async def call_openai() -> tuple[float, float]:
        async def chunks() -> AsyncIterator[Any]:
            stream = await oai.chat.completions.create(
                model="gpt-5-mini",
                max_tokens=MAX_TOKENS,
                messages=[{"role": "user", "content": PROMPT}],
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in stream:
                yield chunk

        return await timed_stream(
            chunks(), lambda c: bool(c.choices) and bool(c.choices[0].delta.content)
        )

    async def call_gemini() -> tuple[float, float]:
        async def chunks() -> AsyncIterator[Any]:
            # The same request the adapter sends: automatic function calling and
            # continuation off, so that one call is one HTTP request.
            stream = await gem.aio.models.generate_content_stream(
                model="gemini-2.5-flash",
                contents=[genai_types.Content(role="user", parts=[genai_types.Part(text=PROMPT)])],
                config=genai_types.GenerateContentConfig(
                    max_output_tokens=MAX_TOKENS,
                    automatic_function_calling=genai_types.AutomaticFunctionCallingConfig(
                        disable=True
                    ),
                    automatic_continuation=False,
                ),
            )
            async for chunk in stream:
                yield chunk

        # the same text test Helios's adapter applies (the SDK's `.text` is slower)
        return await timed_stream(chunks(), lambda c: bool(c.candidates))

    async def close_anthropic() -> None:
        await ant.close()

    async def close_openai() -> None:
        await oai.close()

    async def close_gemini() -> None:
        await gem.aio.aclose()

    return {
        "anthropic": (call_anthropic, close_anthropic),
        "openai": (call_openai, close_openai),
        "gemini": (call_gemini, close_gemini),
    }


def by_simulator(call: Timed) -> Call:
    async def sample() -> Sample:
        ttft, total = await call()
        return ttft, total, SIMULATOR

    return sample


def helios_settings(base_url: str, *, cache: bool, hit_backend: str = "sqlite") -> Settings:
    """The simulator's endpoints; the ledger off; the cache off, or L2 only."""
    endpoint = {"api_key": "bench", "max_retries": 0}
    section: dict[str, Any] = (
        {"enabled": True, "backend": hit_backend, "semantic": {"enabled": False}}
        if cache
        else {"enabled": False}
    )
    return Settings.model_validate(
        {
            "providers": {
                "anthropic": {**endpoint, "base_url": base_url},
                "openai": {**endpoint, "base_url": base_url + "/v1"},
                "gemini": {**endpoint, "base_url": base_url},
            },
            "cache": section,
            "ledger": {"enabled": False},
        }
    )


HELIOS_MODELS = {
    "anthropic": "anthropic:claude-sonnet-5-5",
    "openai": "openai:gpt-5-mini",
    "gemini": "gemini:gemini-2.5-flash",
}


def helios_call(engine: Engine, protocol: str) -> Call:
    request = Request.of(
        PROMPT, model=HELIOS_MODELS[protocol], params=SamplingParams(max_tokens=MAX_TOKENS)
    )

    async def call() -> Sample:
        # Timed from outside with the same timer as the direct arm, so only Helios differs.
        stream = engine.stream(request)
        ttft, total = await timed_stream(aiter(stream), lambda c: bool(c.text))
        completion = stream.completion
        assert completion is not None
        return ttft, total, completion.cache_layer or SIMULATOR

    return call


def describe(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": statistics.median(values) * 1000,
        "p99_ms": percentile(values, 0.99) * 1000,
        "mean_ms": statistics.fmean(values) * 1000,
    }


def versus(arm: list[float], direct: list[float]) -> dict[str, float]:
    """An arm against the direct calls of the same rounds."""
    # each call is paired with the direct call of its round, so drift on the shared cores
    # cancels out of this estimate of the added time
    added = [a - b for a, b in zip(arm, direct, strict=True)]
    return {
        "added_p50_ms": (statistics.median(arm) - statistics.median(direct)) * 1000,
        "paired_added_p50_ms": statistics.median(added) * 1000,
        "paired_added_p99_ms": percentile(added, 0.99) * 1000,
        "ratio_p50": statistics.median(arm) / statistics.median(direct),
        "ratio_p99": percentile(arm, 0.99) / percentile(direct, 0.99),
    }


async def interleaved(calls: dict[str, Call], n: int, warmup: int) -> dict[str, list[Sample]]:
    """``warmup + n`` rounds, one call per arm each, the order rotating every round."""
    names = list(calls)
    samples: dict[str, list[Sample]] = {name: [] for name in names}
    for i in range(warmup + n):
        shift = i % len(names)
        for name in [*names[shift:], *names[:shift]]:
            sample = await calls[name]()
            if i >= warmup:
                samples[name].append(sample)
    return samples


def answered_by(samples: list[Sample], expected: str, arm: str, protocol: str) -> dict[str, int]:
    """Who answered an arm's timed calls; every one must be ``expected`` (a hit arm that
    reached the simulator, or a miss arm served from a cache, would compare nothing)."""
    counts = Counter(sample[2] for sample in samples)
    if set(counts) != {expected}:
        raise SystemExit(f"{protocol} {arm}: expected every call from {expected}, got {counts}")
    return dict(counts)


async def measure_overhead(base_url: str, n: int, warmup: int, hit_backend: str) -> dict[str, Any]:
    direct = direct_calls(base_url)
    results: dict[str, Any] = {}
    miss_settings = helios_settings(base_url, cache=False)
    hit_settings = helios_settings(base_url, cache=True, hit_backend=hit_backend)
    try:
        async with Runtime.open(miss_settings) as miss, Runtime.open(hit_settings) as hit:
            assert miss.cache is None and hit.cache is not None and hit.cache.semantic is None
            for protocol, (direct_call, _) in direct.items():
                calls = {
                    "direct": by_simulator(direct_call),
                    "helios": helios_call(miss.engine, protocol),
                    "hit": helios_call(hit.engine, protocol),
                }
                primed = await calls["hit"]()  # reaches the simulator; its reply is stored
                if primed[2] != SIMULATOR:
                    raise SystemExit(f"{protocol}: the cache held a reply before priming")
                samples = await interleaved(calls, n, warmup)
                row: dict[str, Any] = {
                    "answered_by": {
                        "direct": answered_by(samples["direct"], SIMULATOR, "direct", protocol),
                        "helios": answered_by(samples["helios"], SIMULATOR, "miss", protocol),
                        "hit": answered_by(samples["hit"], "L2", "hit", protocol),
                    }
                }
                for metric in METRICS:
                    series = {
                        arm: [
                            ttft if metric == "ttft" else total for ttft, total, _ in samples[arm]
                        ]
                        for arm in ARMS
                    }
                    row[metric] = {
                        "direct": describe(series["direct"]),
                        "helios": describe(series["helios"]),
                        "helios_hit": describe(series["hit"]),
                        # the miss path against the direct SDK (the README's table)
                        **versus(series["helios"], series["direct"]),
                        "hit_vs_direct": versus(series["hit"], series["direct"]),
                    }
                results[protocol] = row
    finally:
        for _, close in direct.values():
            await close()
    return results


async def measure_engine_in_process(n: int, *, ledger: bool, chunks: int = 32) -> dict[str, Any]:
    """Helios's own cost per streamed call, without network or SDK: the same instant
    provider iterated directly and through the engine (route, resolve, timing, assembly,
    cost, the call's record), the cache off; the ledger off, or on (a temporary SQLite
    file, written in batches off the event loop as in production)."""
    reply = ["word "] * chunks
    provider = FunctionProvider(lambda _: reply, name="anthropic", model="claude-sonnet-5-5")
    request = Request.of(PROMPT, model="anthropic:claude-sonnet-5-5")
    warmup = 50
    with tempfile.TemporaryDirectory(prefix="helios-bench-ledger-") as folder:
        settings = Settings.model_validate(
            {
                "cache": {"enabled": False},
                "ledger": {"enabled": ledger, "path": str(Path(folder) / "ledger.sqlite3")},
            }
        )
        async with Runtime.open(settings, providers=[provider]) as runtime:
            engine = runtime.engine

            async def direct() -> Sample:
                started = time.perf_counter()
                async for _ in provider.stream(request):
                    pass
                return 0.0, time.perf_counter() - started, "provider"

            async def helios() -> Sample:
                started = time.perf_counter()
                async for _ in engine.stream(request):
                    pass
                return 0.0, time.perf_counter() - started, "provider"

            samples = await interleaved({"direct": direct, "helios": helios}, n, warmup)
            recorded = None
            if runtime.store is not None:
                await runtime.flush()
                recorded = await runtime.store.count()
    series = {arm: [total for _, total, _ in samples[arm]] for arm in samples}
    added = [h - d for h, d in zip(series["helios"], series["direct"], strict=True)]
    result: dict[str, Any] = {
        "chunks_per_call": chunks,
        "ledger": "sqlite" if ledger else "off",
        "calls_per_arm": n,
        "direct": describe(series["direct"]),
        "helios": describe(series["helios"]),
        "paired_added_p50_ms": statistics.median(added) * 1000,
        "paired_added_p99_ms": percentile(added, 0.99) * 1000,
    }
    if recorded is not None:
        # one persona_llm_run per engine call, warm-up included (cache off, explicit model)
        result["events_recorded"] = recorded
        result["engine_calls"] = n + warmup
    return result


async def measure_local(n: int) -> dict[str, Any]:
    settings = Settings.model_validate({"cache": {"enabled": False}, "ledger": {"enabled": False}})
    prompts = [
        "What is the capital of Japan?",
        "Give three reasons to write tests.",
        "Explain what a hash map is.",
        "Name a colour of the sky.",
    ]
    ttfts: list[float] = []
    speeds: list[float] = []
    async with Runtime.open(settings) as runtime:
        started = time.perf_counter()
        provider = await runtime.registry.aresolve(settings.default_model)
        await provider.warm()  # the weights, once per process (the engine would do it too)
        load_s = time.perf_counter() - started
        for i in range(n):
            request = Request.of(prompts[i % len(prompts)], params=SamplingParams(max_tokens=64))
            stream = runtime.engine.stream(request)
            async for _ in stream:
                pass
            completion = stream.completion
            assert completion is not None
            ttfts.append(completion.ttft_s)
            generation_s = completion.duration_s - completion.ttft_s
            if completion.usage.output_tokens > 1 and generation_s > 0:
                speeds.append((completion.usage.output_tokens - 1) / generation_s)
    return {
        "model": provider.spec,
        "load_s": load_s,
        "runs": n,
        "ttft": describe(ttfts),
        "tokens_per_s_median": statistics.median(speeds) if speeds else None,
    }


def print_table(overhead: dict[str, Any]) -> None:
    print("\nStreamed call against the simulator (ms): direct SDK, Helios miss path (cache off)")
    print(
        f"{'protocol':10} {'metric':6} {'direct p50':>11} {'helios p50':>11} {'added p50':>10} "
        f"{'paired':>8} {'direct p99':>11} {'helios p99':>11} {'ratio p50':>10}"
    )
    for protocol, row in overhead.items():
        for metric in METRICS:
            m = row[metric]
            print(
                f"{protocol:10} {metric:6} {m['direct']['p50_ms']:11.3f} "
                f"{m['helios']['p50_ms']:11.3f} {m['added_p50_ms']:10.3f} "
                f"{m['paired_added_p50_ms']:8.3f} "
                f"{m['direct']['p99_ms']:11.3f} {m['helios']['p99_ms']:11.3f} "
                f"{m['ratio_p50']:10.3f}"
            )
    print("\nThe same request answered by Helios's L2 cache (hit path) beside the direct call (ms)")
    print(
        f"{'protocol':10} {'metric':6} {'direct p50':>11} {'hit p50':>11} {'paired':>8} "
        f"{'direct p99':>11} {'hit p99':>11} {'ratio p50':>10}"
    )
    for protocol, row in overhead.items():
        for metric in METRICS:
            m = row[metric]
            hit = m["hit_vs_direct"]
            print(
                f"{protocol:10} {metric:6} {m['direct']['p50_ms']:11.3f} "
                f"{m['helios_hit']['p50_ms']:11.3f} {hit['paired_added_p50_ms']:8.3f} "
                f"{m['direct']['p99_ms']:11.3f} {m['helios_hit']['p99_ms']:11.3f} "
                f"{hit['ratio_p50']:10.3f}"
            )
    worst = max(row[m]["paired_added_p50_ms"] for row in overhead.values() for m in METRICS)
    verdict = "met" if worst <= TARGET_ADDED_MS else "MISSED"
    print(
        f"\ntarget: the miss path adds <= {TARGET_ADDED_MS:g} ms at p50 (paired): {verdict} "
        f"(worst {worst:.3f} ms)"
    )


def print_in_process(label: str, result: dict[str, Any]) -> None:
    print(
        f"{label}: direct p50 {result['direct']['p50_ms']:.3f} ms, through Helios "
        f"{result['helios']['p50_ms']:.3f} ms, added p50 {result['paired_added_p50_ms']:.3f} ms "
        f"(p99 {result['paired_added_p99_ms']:.3f})"
        + (
            f"; {result['events_recorded']} events recorded for {result['engine_calls']} calls"
            if "events_recorded" in result
            else ""
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300, help="calls per arm and protocol")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--local-n", type=int, default=8)
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument(
        "--hit-backend",
        choices=("sqlite", "memory"),
        default="sqlite",
        help="the L2 store of the hit path (Helios's default: sqlite)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="results file")
    args = parser.parse_args()

    with temporary_data_dir():
        port = free_port()
        simulator = start_simulator(port, "--reply-tokens", "32")
        try:
            overhead = asyncio.run(
                measure_overhead(f"http://127.0.0.1:{port}", args.n, args.warmup, args.hit_backend)
            )
        finally:
            simulator.terminate()
            simulator.wait(timeout=10)
        in_process = asyncio.run(measure_engine_in_process(args.n * 5, ledger=False))
        in_process_ledger = asyncio.run(measure_engine_in_process(args.n * 5, ledger=True))
        local = None if args.skip_local else asyncio.run(measure_local(args.local_n))
    result = {
        "benchmark": "providers",
        "machine": machine(),
        "sdk_versions": {
            "anthropic": anthropic.__version__,
            "openai": openai.__version__,
            "google-genai": genai.__version__,
            "httpx2": httpx2.__version__,
        },
        "n_per_arm": args.n,
        "warmup": args.warmup,
        "arms": {
            "direct": "the official SDK",
            "helios": "Helios miss path: response cache off, every call reaches the simulator",
            "hit": f"Helios hit path: cache on, L2 only ({args.hit_backend}), primed by one call",
        },
        "target_added_p50_ms": TARGET_ADDED_MS,
        "overhead": overhead,
        "engine_in_process": in_process,
        "engine_in_process_ledger": in_process_ledger,
        "local_model": local,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(overhead)
    chunks = in_process["chunks_per_call"]
    print(f"\nEngine alone (instant {chunks}-chunk provider, in process, cache off):")
    print_in_process("  ledger off", in_process)
    print_in_process("  ledger on (SQLite)", in_process_ledger)
    recording = in_process_ledger["paired_added_p50_ms"] - in_process["paired_added_p50_ms"]
    print(f"  ledger on minus ledger off, added p50: {recording:+.3f} ms (recording each call)")
    if local:
        speed = local["tokens_per_s_median"]
        print(
            f"\nLocal model ({local['model']}): load {local['load_s']:.2f} s, TTFT p50 "
            f"{local['ttft']['p50_ms']:.0f} ms (p99 {local['ttft']['p99_ms']:.0f} ms), "
            + (f"{speed:.1f} tokens/s" if speed is not None else "no tokens/s")
            + f" median over {local['runs']} runs"
        )
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
