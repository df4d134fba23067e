"""Engine overhead vs direct SDK calls, and the local model's speed.

Part 1: the provider simulator runs in its own process (`helios sim`), so its work does not
share a GIL with the client. For each protocol, the same streamed request is made N times
directly with the official SDK and N times through Helios (Engine -> adapter -> same SDK),
interleaved so that drift hits both arms alike. TTFT is the time to the first text
delta, total the time to the end of the stream. Reported: p50, p99, ratio and the added
milliseconds at p50.

Part 2: the embedded llama.cpp model: load time, TTFT and tokens/s over a few prompts.

Usage: .venv/bin/python bench/providers.py [--n 300] [--local-n 8] [--skip-local]
Writes bench/results/providers.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
from google import genai
from google.genai import types as genai_types
from pydantic import SecretStr

from common import free_port, machine, start_simulator
from helios import (
    Catalog,
    Engine,
    FunctionProvider,
    ProviderRegistry,
    ProviderSettings,
    Request,
    SamplingParams,
    Settings,
)
from helios.percentiles import percentile

RESULTS = Path(__file__).parent / "results" / "providers.json"
PROMPT = "Summarise the trade-offs of microservices for a five-person startup."
MAX_TOKENS = 64
Timed = Callable[[], Awaitable[tuple[float, float]]]


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


def helios_engine(base_url: str) -> Engine:
    def endpoint(url: str) -> ProviderSettings:
        return ProviderSettings(base_url=url, api_key=SecretStr("bench"), max_retries=0)

    settings = Settings(
        providers={
            "anthropic": endpoint(base_url),
            "openai": endpoint(base_url + "/v1"),
            "gemini": endpoint(base_url),
        }
    )
    return Engine.from_settings(settings)


HELIOS_MODELS = {
    "anthropic": "anthropic:claude-sonnet-5-5",
    "openai": "openai:gpt-5-mini",
    "gemini": "gemini:gemini-2.5-flash",
}


def helios_call(engine: Engine, protocol: str) -> Timed:
    request = Request.of(
        PROMPT, model=HELIOS_MODELS[protocol], params=SamplingParams(max_tokens=MAX_TOKENS)
    )

    async def call() -> tuple[float, float]:
        # Timed from outside with the same timer as the direct arm, so only Helios differs.
        stream = engine.stream(request)
        timings = await timed_stream(aiter(stream), lambda c: bool(c.text))
        assert stream.completion is not None
        return timings

    return call


def describe(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": statistics.median(values) * 1000,
        "p99_ms": percentile(values, 0.99) * 1000,
        "mean_ms": statistics.fmean(values) * 1000,
    }


async def measure_overhead(base_url: str, n: int, warmup: int) -> dict[str, Any]:
    direct = direct_calls(base_url)
    engine = helios_engine(base_url)
    results: dict[str, Any] = {}
    try:
        for protocol, (direct_call, _) in direct.items():
            through_helios = helios_call(engine, protocol)
            samples: dict[str, dict[str, list[float]]] = {
                arm: {"ttft": [], "total": []} for arm in ("direct", "helios")
            }
            for i in range(warmup + n):
                order = (("direct", direct_call), ("helios", through_helios))
                for arm, call in order if i % 2 == 0 else order[::-1]:
                    ttft, total = await call()
                    if i >= warmup:
                        samples[arm]["ttft"].append(ttft)
                        samples[arm]["total"].append(total)
            row: dict[str, Any] = {}
            for metric in ("ttft", "total"):
                d = describe(samples["direct"][metric])
                h = describe(samples["helios"][metric])
                pairs = zip(samples["helios"][metric], samples["direct"][metric], strict=True)
                row[metric] = {
                    "direct": d,
                    "helios": h,
                    # each Helios call is paired with the direct call next to it, so drift on
                    # the shared cores cancels out of this estimate of the added time
                    "paired_added_p50_ms": statistics.median(a - b for a, b in pairs) * 1000,
                    "ratio_p50": h["p50_ms"] / d["p50_ms"],
                    "ratio_p99": h["p99_ms"] / d["p99_ms"],
                    "added_p50_ms": h["p50_ms"] - d["p50_ms"],
                }
            results[protocol] = row
    finally:
        await engine.aclose()
        for _, close in direct.values():
            await close()
    return results


async def measure_engine_in_process(n: int, chunks: int = 32) -> dict[str, Any]:
    """Helios's own cost per streamed call, without network or SDK: the same instant
    provider iterated directly and through the engine (resolve, timing, assembly, cost)."""
    reply = ["word "] * chunks
    provider = FunctionProvider(lambda _: reply, name="anthropic", model="claude-sonnet-5-5")
    catalog = Catalog.load()
    registry = ProviderRegistry(Settings(), catalog)
    registry.add(provider)
    engine = Engine(registry, catalog)
    request = Request.of(PROMPT, model="anthropic:claude-sonnet-5-5")
    samples: dict[str, list[float]] = {"direct": [], "helios": []}
    for i in range(n + 50):
        for arm in ("direct", "helios") if i % 2 == 0 else ("helios", "direct"):
            started = time.perf_counter()
            source = provider.stream(request) if arm == "direct" else aiter(engine.stream(request))
            async for _ in source:
                pass
            if i >= 50:
                samples[arm].append(time.perf_counter() - started)
    added = [h - d for h, d in zip(samples["helios"], samples["direct"], strict=True)]
    return {
        "chunks_per_call": chunks,
        "direct": describe(samples["direct"]),
        "helios": describe(samples["helios"]),
        "paired_added_p50_ms": statistics.median(added) * 1000,
        "paired_added_p99_ms": percentile(added, 0.99) * 1000,
    }


async def measure_local(n: int) -> dict[str, Any]:
    from helios.providers.llamacpp import load_model
    from helios.providers.local_model import packaged_model_path

    settings = Settings()
    started = time.perf_counter()
    await asyncio.to_thread(load_model, packaged_model_path(), settings.local)
    load_s = time.perf_counter() - started
    engine = Engine.from_settings(settings)
    prompts = [
        "What is the capital of Japan?",
        "Give three reasons to write tests.",
        "Explain what a hash map is.",
        "Name a colour of the sky.",
    ]
    ttfts: list[float] = []
    speeds: list[float] = []
    try:
        for i in range(n):
            request = Request.of(prompts[i % len(prompts)], params=SamplingParams(max_tokens=64))
            stream = engine.stream(request)
            async for _ in stream:
                pass
            completion = stream.completion
            assert completion is not None
            ttfts.append(completion.ttft_s)
            generation_s = completion.duration_s - completion.ttft_s
            if completion.usage.output_tokens > 1 and generation_s > 0:
                speeds.append((completion.usage.output_tokens - 1) / generation_s)
    finally:
        await engine.aclose()
    return {
        "model": "llamacpp:smollm2-135m-instruct",
        "load_s": load_s,
        "runs": n,
        "ttft": describe(ttfts),
        "tokens_per_s_median": statistics.median(speeds) if speeds else None,
    }


def print_table(overhead: dict[str, Any], local: dict[str, Any] | None) -> None:
    print("\nEngine overhead (streamed call against the simulator; ms)")
    print(
        f"{'protocol':10} {'metric':6} {'direct p50':>11} {'helios p50':>11} {'added p50':>10} "
        f"{'paired':>8} {'direct p99':>11} {'helios p99':>11} {'ratio p50':>10}"
    )
    for protocol, row in overhead.items():
        for metric in ("ttft", "total"):
            m = row[metric]
            print(
                f"{protocol:10} {metric:6} {m['direct']['p50_ms']:11.3f} "
                f"{m['helios']['p50_ms']:11.3f} {m['added_p50_ms']:10.3f} "
                f"{m['paired_added_p50_ms']:8.3f} "
                f"{m['direct']['p99_ms']:11.3f} {m['helios']['p99_ms']:11.3f} "
                f"{m['ratio_p50']:10.3f}"
            )
    if local:
        print(
            f"\nLocal model: load {local['load_s']:.2f} s, TTFT p50 "
            f"{local['ttft']['p50_ms']:.0f} ms (p99 {local['ttft']['p99_ms']:.0f} ms), "
            f"{local['tokens_per_s_median']:.1f} tokens/s median over {local['runs']} runs"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300, help="calls per arm and protocol")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--local-n", type=int, default=8)
    parser.add_argument("--skip-local", action="store_true")
    args = parser.parse_args()

    port = free_port()
    simulator = start_simulator(port, "--reply-tokens", "32")
    try:
        overhead = asyncio.run(measure_overhead(f"http://127.0.0.1:{port}", args.n, args.warmup))
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)
    in_process = asyncio.run(measure_engine_in_process(args.n * 5))
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
        "overhead": overhead,
        "engine_in_process": in_process,
        "local_model": local,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print_table(overhead, local)
    print(
        f"\nEngine alone (instant {in_process['chunks_per_call']}-chunk provider, in process): "
        f"direct p50 {in_process['direct']['p50_ms']:.3f} ms, through Helios "
        f"{in_process['helios']['p50_ms']:.3f} ms, added p50 "
        f"{in_process['paired_added_p50_ms']:.3f} ms (p99 {in_process['paired_added_p99_ms']:.3f})"
    )
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
