"""Dialectic pipeline latency: the reference design's experiment, 100x faster, on the simulator.

The reference design measured stage latencies over 452 production tasks (mean +- sd):
thesis 7.54 +- 3.49 s, antithesis 8.82 +- 3.35 s, synthesis 13.73 +- 4.92 s. Here each
persona calls its own simulator "model" whose whole-call duration is drawn from that
normal distribution scaled down 100x (clamped at 5 ms), 15 % of it before the first token.
Evidence gathering sleeps 60 +- 25 ms (6.0 +- 2.5 s scaled; our choice, the reference gives
no figure) and the judge is drawn like the thesis. The simulator's words cite nothing, so
the timing wrapper appends `` [E1]`` to each synthesis (the gate checks citations before
it asks the judge); its replies are not judge JSON, so every gate makes two judge calls
(the verdict and its repair request) and fails; that is the same in every arm and
``max_passes=1`` stops there.

Arms, interleaved round-robin with the order rotating each round:

- ``sequential``: evidence, then thesis (``orchestration.async_thesis.enabled=false``);
- ``async_thesis``: thesis concurrent with evidence (the default);
- ``parallel_prep``: async thesis + ``orchestration.parallel_prep.enabled=true``;
- ``single_call``: evidence, then one ``dialectic`` call for all three voices
  (``orchestration.single_call.enabled=true``). Its duration is drawn from the sum of the
  three stages' distributions (means added, variances added): one call generates what the
  three did, no faster per token, so what the arm can save is the round trips and the
  per-call time to first token, which is what the reference design expected to gain.

Arms are *paired*: each arm routes its personas to models of its own (``thesis-sequential``,
``thesis-async_thesis``, ...) that share one profile and seed per stage, and each arm's
gatherer draws from the same seed, so task i meets the same latencies in every arm and
the differences are the orchestration's alone. The response cache and the ledger are off.

Each arm is assembled by ``Runtime.open(settings, sink=arm_sink, observers=[probe])`` and
runs ``DialecticPipeline(runtime.engine, ...)`` with the runtime's sink: the pipeline
records the task's events there and the engine each persona call's (``persona_llm_run``),
so ``arm_sink`` holds every event of a task, as the ledger would.

Helios's own overhead per persona call is the engine's time (``CallRecord.engine_s``)
minus the time spent inside the provider adapter, timed by a wrapper registered in the
runtime's registry around the real OpenAI adapter.

Every run happens in a temporary ``HELIOS_DATA_DIR`` (bench/common.py).

Usage: .venv/bin/python bench/pipeline.py [--n 60] [--arms sequential,parallel_prep]
    [--name pipeline] [--out-dir bench/results]
Writes <out-dir>/<name>.json and every task's events to <out-dir>/<name>_events.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from common import free_port, machine, start_simulator, temporary_data_dir
from helios.catalog import Catalog
from helios.config.settings import Settings
from helios.engine import CallRecord
from helios.ledger.events import GateVerdict, PersonaLLMRun, TaskStarted
from helios.ledger.sink import MemorySink
from helios.messages import Chunk, Completion, Request
from helios.percentiles import percentile
from helios.pipeline.dialectic import DialecticPipeline
from helios.pipeline.evidence import Evidence, Passage
from helios.pipeline.results import DialecticResult
from helios.providers.base import Provider
from helios.providers.openai import create as create_openai
from helios.runtime import Runtime
from helios.sim import LatencyProfile, SimConfig, SimState
from pipeline_report import print_tables

RESULTS = Path(__file__).parent / "results"
SCALE = 100
# (mean s, sd s) per stage at production scale; divided by SCALE below.
REFERENCE_S = {
    "evidence": (6.0, 2.5),  # chosen: comparable to the thesis, which it overlaps
    "thesis": (7.54, 3.49),
    "antithesis": (8.82, 3.35),
    "synthesis": (13.73, 4.92),
    "judge": (7.54, 3.49),  # chosen: like the thesis, per call
    # chosen: the three voices' generation in one call (means and variances added)
    "dialectic": (7.54 + 8.82 + 13.73, (3.49**2 + 3.35**2 + 4.92**2) ** 0.5),
}
MIN_S = 0.005
TTFT_FRACTION = 0.15
REPLY_TOKENS = 32
PERSONAS = ("thesis", "antithesis", "synthesis", "judge", "dialectic")
STREAMED = ("thesis", "antithesis", "synthesis", "dialectic")
STAGES = ("evidence", *PERSONAS)
# What a task's tokens would cost on a real model: the simulator's models have no prices.
PRICED_AS = "claude-sonnet-5-5"
ARMS: dict[str, dict[str, Any]] = {
    "sequential": {"async_thesis": {"enabled": False}},
    "async_thesis": {"async_thesis": {"enabled": True}},
    "parallel_prep": {"async_thesis": {"enabled": True}, "parallel_prep": {"enabled": True}},
    "single_call": {"async_thesis": {"enabled": False}, "single_call": {"enabled": True}},
}
BASELINE = "sequential"


def scaled(stage: str) -> tuple[float, float]:
    mean, sd = REFERENCE_S[stage]
    return mean / SCALE, sd / SCALE


def sim_model(stage: str, arm: str) -> str:
    return f"{stage}-{arm}"


# -- the simulator, in its own process --------------------------------------------------
def sim_config(arms: Sequence[str], seed: int) -> SimConfig:
    profiles: dict[str, LatencyProfile] = {}
    for index, stage in enumerate(PERSONAS):
        mean, sd = scaled(stage)
        # One seed per stage, shared by the arms: this is what pairs them.
        profile = LatencyProfile(
            total_mean_s=mean,
            total_sd_s=sd,
            total_min_s=MIN_S,
            ttft_fraction=TTFT_FRACTION,
            seed=seed * 100 + index,
        )
        profiles.update({sim_model(stage, arm): profile for arm in arms})
    return SimConfig(latency_by_model=profiles, reply_tokens=REPLY_TOKENS, seed=seed)


# -- the world one arm runs in ------------------------------------------------------------
EVIDENCE = Evidence(
    passages=tuple(
        Passage(
            id=f"E{i}",
            source=f"docs/architecture{i}.md",
            start_line=10 * i,
            end_line=10 * i + 4,
            text=f"Passage {i}: small teams pay for every service boundary they run.",
            score=0.9 - i / 10,
        )
        for i in (1, 2)
    ),
    documents=2,
    chunks=8,
    from_cache=False,
    embedded_chunks=8,
    duration_s=0.0,
)


class SleepingGatherer:
    """Stands in for evidence gathering: a seeded normal delay, then fixed evidence."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._mean, self._sd = scaled("evidence")

    async def gather(self, goal: str, documents: Sequence[object]) -> Evidence:
        started = time.perf_counter()
        await asyncio.sleep(max(MIN_S, self._rng.normalvariate(self._mean, self._sd)))
        return dataclasses.replace(EVIDENCE, duration_s=time.perf_counter() - started)


class OverheadProbe:
    """Pairs each call's engine time (an engine observer) with its time inside the provider."""

    def __init__(self) -> None:
        self._inside: dict[int, float] = {}
        self.calls: list[dict[str, Any]] = []
        self.recording = True

    def provider_time(self, request: Request, seconds: float) -> None:
        # The engine hands the provider the very request object its CallRecord carries.
        self._inside[id(request)] = seconds

    def on_call(self, record: CallRecord) -> None:
        inside = self._inside.pop(id(record.request), None)
        if record.error is not None or inside is None:
            raise SystemExit(f"a {record.request.context.persona} call failed: {record.error!r}")
        self.calls.append(
            {
                "measured": self.recording,
                "persona": record.request.context.persona,
                "model": record.model,
                "engine_s": record.engine_s,
                "provider_s": inside,
                "overhead_s": record.engine_s - inside,
            }
        )


class TimedProvider(Provider):
    """Wraps the real adapter; counts only the time spent inside it.

    For a stream that is the time inside each of the adapter's ``__anext__`` calls, the
    last (which ends the stream) included: from the stream's start to its end, less the
    time the engine and the pipeline held each chunk, which is Helios's work.
    """

    def __init__(self, inner: Provider, probe: OverheadProbe) -> None:
        self.inner = inner
        self.name = inner.name
        self.model = inner.model
        self._probe = probe

    async def complete(self, request: Request) -> Completion:
        started = time.perf_counter()
        completion = await self.inner.complete(request)
        self._probe.provider_time(request, time.perf_counter() - started)
        return completion

    async def stream(self, request: Request) -> AsyncIterator[Chunk]:
        inside = 0.0
        chunks = aiter(self.inner.stream(request))
        # the gate asks the judge only about an answer that cites the evidence
        cite = request.context.persona in ("synthesis", "dialectic")
        while True:
            started = time.perf_counter()
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                inside += time.perf_counter() - started
                break
            inside += time.perf_counter() - started
            if cite and (chunk.usage is not None or chunk.finish_reason is not None):
                cite = False
                yield Chunk(text=" [E1]")
            yield chunk
        self._probe.provider_time(request, inside)

    async def warm(self) -> None:
        await self.inner.warm()

    async def aclose(self) -> None:
        await self.inner.aclose()


def arm_settings(arm: str, base_url: str) -> Settings:
    return Settings.model_validate(
        {
            "default_model": f"openai:{sim_model('default', arm)}",
            "providers": {
                # max_retries 0: a retried call would unpair the arms; none is expected.
                "openai": {"base_url": base_url + "/v1", "api_key": "bench", "max_retries": 0}
            },
            "cache": {"enabled": False},
            # the arm's sink holds the events; no ledger file to write behind the timings
            "ledger": {"enabled": False},
            "personas": {stage: {"model": f"openai:{sim_model(stage, arm)}"} for stage in PERSONAS},
            "orchestration": {**ARMS[arm], "max_passes": 1},
        }
    )


@dataclasses.dataclass
class Arm:
    name: str
    runtime: Runtime
    pipeline: DialecticPipeline
    sink: MemorySink
    """Every event of the arm's tasks: the pipeline's and the engine's."""
    tasks: list[dict[str, Any]] = dataclasses.field(default_factory=list)


async def build_arm(
    stack: contextlib.AsyncExitStack, name: str, base_url: str, seed: int, probe: OverheadProbe
) -> Arm:
    sink = MemorySink()
    runtime = await stack.enter_async_context(
        Runtime.open(arm_settings(name, base_url), sink=sink, observers=[probe])
    )
    # before the first call: every openai:<model> the engine builds is the timed adapter
    runtime.registry.register_factory(
        "openai", lambda provider, model, s: TimedProvider(create_openai(provider, model, s), probe)
    )
    pipeline = DialecticPipeline(
        runtime.engine, runtime.settings, SleepingGatherer(seed), sink=runtime.sink
    )
    return Arm(name, runtime, pipeline, sink)


def task_row(index: int, result: DialecticResult, sink: MemorySink) -> dict[str, Any]:
    stages: dict[str, float] = {"evidence": result.evidence.duration_s}
    ttft: dict[str, float] = {}
    for record in result.stages:
        stages[record.stage] = stages.get(record.stage, 0.0) + record.duration_s
        if record.stage in STREAMED:
            ttft[record.stage] = record.ttft_s
    started = sink.of_type(TaskStarted)[0].timestamp
    answer = ("synthesis", "dialectic")
    synthesis = next(e for e in sink.of_type(PersonaLLMRun) if e.stage in answer)
    verdict = sink.of_type(GateVerdict)[0]
    return {
        "index": index,
        "task_id": result.task_id,
        "total_s": result.duration_s,
        # From the events, so that the ledger can reproduce it: start -> synthesis done.
        "answer_s": synthesis.timestamp - started,
        "stages_s": stages,
        "ttft_s": ttft,
        "judge_calls": sum(record.stage == "judge" for record in result.stages),
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "async_fallback": result.async_fallback,
        "gate": {"passed": verdict.passed, "judge_valid": verdict.judge_valid},
    }


async def run_arms(
    names: Sequence[str], base_url: str, n: int, warmup: int, seed: int, events_path: Path
) -> tuple[dict[str, Arm], list[dict[str, Any]], float]:
    probe = OverheadProbe()
    async with contextlib.AsyncExitStack() as stack:
        arms = {name: await build_arm(stack, name, base_url, seed, probe) for name in names}
        started = time.perf_counter()
        with events_path.open("w", encoding="utf-8") as events:
            for i in range(warmup + n):
                measured = i >= warmup
                probe.recording = measured
                # Rotate the order each round so no arm always runs first (or after another).
                shift = i % len(names)
                for name in [*names[shift:], *names[:shift]]:
                    arm = arms[name]
                    goal = f"Task {i}: should a five-person startup split its monolith?"
                    result = await arm.pipeline.run(goal)
                    if measured:
                        arm.tasks.append(task_row(i - warmup, result, arm.sink))
                        events.writelines(e.model_dump_json() + "\n" for e in arm.sink.events)
                    arm.sink.events.clear()
        wall_s = time.perf_counter() - started
    return arms, probe.calls, wall_s


# -- statistics ---------------------------------------------------------------------------
def ms(values: Sequence[float]) -> dict[str, float]:
    return {
        "mean_ms": statistics.fmean(values) * 1000,
        "sd_ms": statistics.stdev(values) * 1000 if len(values) > 1 else 0.0,
        "p50_ms": statistics.median(values) * 1000,
        "p99_ms": percentile(values, 0.99) * 1000,
    }


def arm_stats(arm: Arm, baseline: Arm | None) -> dict[str, Any]:
    tasks = arm.tasks
    totals = [t["total_s"] for t in tasks]
    stats: dict[str, Any] = {
        "n": len(tasks),
        "total": ms(totals),
        "answer": ms([t["answer_s"] for t in tasks]),
        "stages": {
            stage: ms([t["stages_s"][stage] for t in tasks])
            for stage in STAGES
            if all(stage in t["stages_s"] for t in tasks)
        },
        "judge_calls_per_task": statistics.fmean(t["judge_calls"] for t in tasks),
        "tokens": {
            "input_mean": statistics.fmean(t["input_tokens"] for t in tasks),
            "output_mean": statistics.fmean(t["output_tokens"] for t in tasks),
        },
        "cost_usd_mean": statistics.fmean(priced(t) for t in tasks),
        "async_fallbacks": sum(t["async_fallback"] is not None for t in tasks),
        "gate_passed": sum(t["gate"]["passed"] for t in tasks),
        "judge_valid": sum(t["gate"]["judge_valid"] for t in tasks),
        "streaming": {
            persona: streaming_stats(
                [t["ttft_s"][persona] for t in tasks], [t["stages_s"][persona] for t in tasks]
            )
            for persona in STREAMED
            if all(persona in t["ttft_s"] for t in tasks)
        },
    }
    if baseline is not None:
        stats["vs_baseline"] = compare(tasks, baseline.tasks)
    return stats


def priced(task: dict[str, Any]) -> float:
    """The task's tokens at ``PRICED_AS``'s catalogue prices (no prompt caching)."""
    prices = Catalog.load().get(PRICED_AS).prices
    return 1e-6 * (task["input_tokens"] * prices.input + task["output_tokens"] * prices.output)


def compare(tasks: Sequence[dict[str, Any]], base: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """An arm against the baseline; task i of each met the same latency draws."""

    def mean(rows: Sequence[dict[str, Any]], key: str) -> float:
        return statistics.fmean(row[key] for row in rows)

    saved = [b["total_s"] - a["total_s"] for b, a in zip(base, tasks, strict=True)]
    variance = statistics.variance(t["total_s"] for t in tasks)
    return {
        "improvement_pct": 100 * (1 - mean(tasks, "total_s") / mean(base, "total_s")),
        "variance_change_pct": 100
        * (variance / statistics.variance(t["total_s"] for t in base) - 1),
        "answer_improvement_pct": 100 * (1 - mean(tasks, "answer_s") / mean(base, "answer_s")),
        "paired_saving_ms": {
            "mean": statistics.fmean(saved) * 1000,
            "ci95": 1.96 * statistics.stdev(saved) / len(saved) ** 0.5 * 1000,
            "p50": statistics.median(saved) * 1000,
        },
        # What running evidence and thesis side by side saves, from the baseline's draws.
        "predicted_saving_ms": 1000
        * statistics.fmean(min(t["stages_s"]["evidence"], t["stages_s"]["thesis"]) for t in base),
        "input_tokens_ratio": mean(tasks, "input_tokens") / mean(base, "input_tokens"),
        "output_tokens_ratio": mean(tasks, "output_tokens") / mean(base, "output_tokens"),
        "cost_ratio": statistics.fmean(map(priced, tasks)) / statistics.fmean(map(priced, base)),
    }


def streaming_stats(ttfts: Sequence[float], durations: Sequence[float]) -> dict[str, float]:
    perceived = [1 - t / d for t, d in zip(ttfts, durations, strict=True) if d > 0]
    return {
        "ttft_mean_ms": statistics.fmean(ttfts) * 1000,
        "ttft_p50_ms": statistics.median(ttfts) * 1000,
        "duration_mean_ms": statistics.fmean(durations) * 1000,
        "duration_p50_ms": statistics.median(durations) * 1000,
        "perceived_improvement_mean": statistics.fmean(perceived),
        "perceived_improvement_p50": statistics.median(perceived),
    }


def overhead_stats(calls: Sequence[dict[str, Any]], config: SimConfig) -> dict[str, Any]:
    """Helios's overhead per call, and how far the simulator's calls ran past their draws."""
    # The simulator draws each model's durations in call order from a seeded RNG, so a
    # copy of its state replays them: the k-th call of a model got the k-th draw.
    replay = SimState(config)
    drawn = [replay.pacing(REPLY_TOKENS, call["model"]).total_s for call in calls]
    rows = [
        {**call, "sim_excess_s": call["provider_s"] - draw}
        for call, draw in zip(calls, drawn, strict=True)
        if call["measured"]
    ]

    def summary(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
        overhead = [row["overhead_s"] for row in rows]
        excess = [row["sim_excess_s"] for row in rows]
        return {
            "calls": len(rows),
            "p50_ms": statistics.median(overhead) * 1000,
            "p99_ms": percentile(overhead, 0.99) * 1000,
            "mean_ms": statistics.fmean(overhead) * 1000,
            "provider_p50_ms": statistics.median(row["provider_s"] for row in rows) * 1000,
            "sim_excess_p50_ms": statistics.median(excess) * 1000,
            "sim_excess_p99_ms": percentile(excess, 0.99) * 1000,
        }

    by_persona = {
        p: summary([c for c in rows if c["persona"] == p])
        for p in PERSONAS
        if any(c["persona"] == p for c in rows)
    }
    return {"by_persona": by_persona, "all": summary(rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=60, help="measured tasks per arm")
    parser.add_argument("--warmup", type=int, default=3, help="unrecorded rounds first")
    parser.add_argument("--seed", type=int, default=452)
    parser.add_argument(
        "--arms",
        default=",".join(ARMS),
        help=f"comma-separated, from {', '.join(ARMS)}; {BASELINE} is always included",
    )
    parser.add_argument("--name", default="pipeline", help="results file name stem")
    parser.add_argument("--out-dir", type=Path, default=RESULTS, help="where results go")
    args = parser.parse_args()
    names = [BASELINE, *(a for a in args.arms.split(",") if a and a != BASELINE)]
    unknown = [a for a in names if a not in ARMS]
    if unknown or args.n < 2:
        parser.error(f"unknown arms {unknown}" if unknown else "--n must be at least 2")

    config = sim_config(names, args.seed)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    events_path = args.out_dir / f"{args.name}_events.jsonl"
    port = free_port()
    with temporary_data_dir(), tempfile.TemporaryDirectory() as folder:
        config_file = Path(folder, "sim.json")
        config_file.write_text(config.model_dump_json())
        simulator = start_simulator(port, "--sim-config", str(config_file))
        try:
            base_url = f"http://127.0.0.1:{port}"
            arms, calls, wall_s = asyncio.run(
                run_arms(names, base_url, args.n, args.warmup, args.seed, events_path)
            )
        finally:
            simulator.terminate()
            simulator.wait(timeout=10)

    baseline = arms[BASELINE]
    all_tasks = [t for arm in arms.values() for t in arm.tasks]
    result = {
        "benchmark": "pipeline",
        "machine": machine(),
        "config": {
            "n_per_arm": args.n,
            "warmup_rounds": args.warmup,
            "seed": args.seed,
            "scale": SCALE,
            "reference_s": REFERENCE_S,
            "stages": STAGES,
            "priced_as": PRICED_AS,
            "min_s": MIN_S,
            "ttft_fraction": TTFT_FRACTION,
            "reply_tokens": REPLY_TOKENS,
            "arms": {name: ARMS[name] for name in names},
            "max_passes": 1,
            "response_cache": False,
            "sim_config": config.model_dump(mode="json"),
        },
        "wall_s": wall_s,
        "arms": {
            name: arm_stats(arm, None if arm is baseline else baseline)
            for name, arm in arms.items()
        },
        "streaming_pooled": {
            persona: streaming_stats(
                [t["ttft_s"][persona] for t in all_tasks if persona in t["ttft_s"]],
                [t["stages_s"][persona] for t in all_tasks if persona in t["ttft_s"]],
            )
            for persona in STREAMED
            if any(persona in t["ttft_s"] for t in all_tasks)
        },
        "overhead": overhead_stats(calls, config),
        "tasks": {name: arm.tasks for name, arm in arms.items()},
    }
    results_path = args.out_dir / f"{args.name}.json"
    results_path.write_text(json.dumps(result, indent=2) + "\n")
    print_tables(result)
    print(
        f"\n{len(names)} arms, {args.n} tasks each, in {wall_s:.0f} s; "
        f"wrote {results_path} and {events_path}"
    )


if __name__ == "__main__":
    main()
