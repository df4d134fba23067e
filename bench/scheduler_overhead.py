"""Scheduler overhead: a 1,000-node DAG of instant tasks, so all the time is the scheduler's.

Three shapes (wide: no dependencies; chain: each task needs the previous one; random: each
task needs up to three earlier ones, with priorities), each run REPEATS times with
concurrency 16 and prompts that pull in the dependencies' outputs. Reported per shape: the
total run time (p50, p99 over runs) and the overhead per task (total / tasks), against the
baseline of awaiting the same 1,000 instant coroutines one after another in plain asyncio.
Target: at most 1 ms per task. Runs in a temporary ``HELIOS_DATA_DIR`` (bench/common.py).

    .venv/bin/python bench/scheduler_overhead.py [--repeats 20] [--out PATH]

Writes bench/results/scheduler.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from pathlib import Path

from common import machine, temporary_data_dir
from helios.messages import CallContext
from helios.percentiles import percentile
from helios.pipeline.dag import Dag, TaskSpec, check_dag
from helios.pipeline.scheduler import DagScheduler

TASKS = 1000
REPEATS = 20
CONCURRENCY = 16
TARGET_MS = 1.0
RESULTS = Path(__file__).parent / "results" / "scheduler.json"


# A microbenchmark of one component: the DagScheduler with an instant runner, built here.
class InstantRunner:
    async def run(self, task: TaskSpec, prompt: str, context: CallContext) -> str:
        return task.id


def build(shape: str, seed: int = 7) -> Dag:
    rng = random.Random(seed)
    tasks: list[TaskSpec] = []
    for i in range(TASKS):
        if shape == "wide" or i == 0:
            deps: list[str] = []
        elif shape == "chain":
            deps = [f"t{i - 1}"]
        else:
            deps = sorted({f"t{rng.randrange(i)}" for _ in range(rng.randint(0, 3))})
        prompt = " ".join(["{goal}", *(f"{{{d}}}" for d in deps)])
        priority = rng.randint(0, 5) if shape == "random" else 0
        tasks.append(
            TaskSpec(id=f"t{i}", persona="p", prompt=prompt, depends_on=deps, priority=priority)
        )
    dag = Dag(name=shape, tasks=tasks, concurrency=CONCURRENCY)
    check_dag(dag)
    return dag


async def baseline() -> float:
    runner = InstantRunner()
    spec = TaskSpec(id="t", persona="p")
    context = CallContext(task_id="baseline", stage="t")
    started = time.perf_counter()
    for _ in range(TASKS):
        await asyncio.create_task(runner.run(spec, "goal", context))
    return time.perf_counter() - started


async def measure(dag: Dag, repeats: int) -> list[float]:
    scheduler = DagScheduler(InstantRunner())
    await scheduler.run(dag, goal="g")  # warm-up
    totals = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = await scheduler.run(dag, goal="g")
        totals.append(time.perf_counter() - started)
        assert result.success
    return totals


async def run(repeats: int, out: Path) -> None:
    rows = []
    base = [await baseline() for _ in range(repeats)]
    base_ms = statistics.median(base) * 1000 / TASKS
    for shape in ("wide", "chain", "random"):
        dag = build(shape)
        totals = await measure(dag, repeats)
        p50, p99 = percentile(totals, 0.5), percentile(totals, 0.99)
        per_task_ms = p50 * 1000 / TASKS
        rows.append(
            {
                "shape": shape,
                "tasks": TASKS,
                "concurrency": CONCURRENCY,
                "runs": repeats,
                "total_p50_ms": round(p50 * 1000, 2),
                "total_p99_ms": round(p99 * 1000, 2),
                "per_task_p50_ms": round(per_task_ms, 4),
                "per_task_p99_ms": round(p99 * 1000 / TASKS, 4),
                "baseline_per_task_ms": round(base_ms, 4),
                "ratio_to_baseline": round(per_task_ms / base_ms, 1),
                "meets_target": per_task_ms <= TARGET_MS,
            }
        )
    report = {
        "benchmark": "scheduler_overhead",
        "target_ms_per_task": TARGET_MS,
        "baseline": "1,000 instant coroutines awaited one by one as asyncio tasks",
        "results": rows,
        "machine": machine(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'shape':<8}{'total p50':>12}{'total p99':>12}{'per task p50':>15}{'baseline':>12}")
    for row in rows:
        print(
            f"{row['shape']:<8}{row['total_p50_ms']:>10.1f}ms{row['total_p99_ms']:>10.1f}ms"
            f"{row['per_task_p50_ms'] * 1000:>12.1f} µs"
            f"{row['baseline_per_task_ms'] * 1000:>9.1f} µs"
        )
    print(
        f"target ≤ {TARGET_MS} ms per task: "
        f"{'met' if all(r['meets_target'] for r in rows) else 'MISSED'} · wrote {out}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=REPEATS, help="runs per shape")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results file")
    args = parser.parse_args()
    with temporary_data_dir():
        asyncio.run(run(args.repeats, args.out))


if __name__ == "__main__":
    main()
