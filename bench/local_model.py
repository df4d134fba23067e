"""The dialectic on the local model: three persona calls against one (``single_call``).

Each run is ``helios run GOAL --docs examples/startup --json`` in a subprocess, as a user
runs it, on the default local model (Qwen2.5-Coder-1.5B-Instruct), with the response cache
off so that every persona call generates. All runs share one temporary data directory: the
model is assembled (and its sha256 checked) by an unrecorded warm-up run, and the evidence
of each goal is embedded once. The goals differ (``GOALS``): with temperature 0 the same
goal gives the same answer, so ten runs of one goal would be one run ten times.

Arms, interleaved per goal with the order alternating:

- ``three_calls``: the default pipeline (async thesis, antithesis, synthesis, gate);
- ``single_call``: ``orchestration.single_call.enabled=true``.

Both with ``orchestration.max_passes`` as given (default 1: the gate's verdict on the first
answer is what is compared). Recorded per run: wall time, the gate's verdict, persona
calls, input and output tokens (prompt tokens include those llama.cpp reused from the
previous call's prefix) and the answer.

Usage: .venv/bin/python bench/local_model.py [--n 6] [--max-passes 1]
    [--out bench/results/local_model.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import machine, temporary_data_dir
from helios.percentiles import percentile

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "examples" / "startup"
GOALS = (
    "Should a five-person startup adopt microservices?",
    "Should our five-person team split its monolith into services this year?",
    "Is Kubernetes worth it for a team of five engineers?",
    "Should a small startup start with a modular monolith?",
    "What architecture should a five-person startup choose for its first product?",
    "Would microservices make debugging easier for a small team?",
    "Should a startup whose domain model still changes draw service boundaries now?",
    "Is independent deployment worth its operational cost for five engineers?",
    "How should a five-person startup structure its backend?",
    "Should a five-person startup run twelve services on Kubernetes?",
)
ARMS: dict[str, list[str]] = {
    "three_calls": [],
    "single_call": ["--flag", "orchestration.single_call.enabled=true"],
}


def helios_run(goal: str, arm: str, max_passes: int) -> dict[str, Any]:
    command = [
        str(Path(sys.executable).with_name("helios")),
        "run",
        goal,
        "--docs",
        str(DOCS),
        "--json",
        "--flag",
        "cache.enabled=false",
        "--flag",
        f"orchestration.max_passes={max_passes}",
        *ARMS[arm],
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    wall_s = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{arm} run failed ({done.returncode}): {done.stderr[-2000:]}")
    result = json.loads(done.stdout)
    stages = result["stages"]
    first = result["passes"][0]
    return {
        "goal": goal,
        "wall_s": wall_s,
        "passed": result["accepted_pass"] is not None,
        "pass1_passed": first["passed"],
        "pass1_evidence_ok": first["evidence_ok"],
        "pass1_judge_pass": first["judge"]["pass"],
        "calls": len(stages),
        "input_tokens": sum(s["input_tokens"] for s in stages),
        "output_tokens": sum(s["output_tokens"] for s in stages),
        "answer": result["answer"],
    }


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    walls = [r["wall_s"] for r in rows]
    return {
        "n": len(rows),
        "gate_passed": sum(r["passed"] for r in rows),
        "pass1_passed": sum(r["pass1_passed"] for r in rows),
        "pass1_evidence_ok": sum(r["pass1_evidence_ok"] for r in rows),
        "wall_p50_s": statistics.median(walls),
        "wall_p99_s": percentile(walls, 0.99),
        "wall_mean_s": statistics.fmean(walls),
        "calls_mean": statistics.fmean(r["calls"] for r in rows),
        "input_tokens_mean": statistics.fmean(r["input_tokens"] for r in rows),
        "output_tokens_mean": statistics.fmean(r["output_tokens"] for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=6, help=f"goals (at most {len(GOALS)})")
    parser.add_argument("--max-passes", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "local_model.json")
    args = parser.parse_args()
    goals = GOALS[: args.n]
    rows: dict[str, list[dict[str, Any]]] = {arm: [] for arm in ARMS}
    with temporary_data_dir():
        # unrecorded: assembles and verifies the model in the data directory
        helios_run("What is a modular monolith?", "single_call", 1)
        for index, goal in enumerate(goals):
            order = list(ARMS) if index % 2 == 0 else list(reversed(ARMS))
            for arm in order:
                row = helios_run(goal, arm, args.max_passes)
                rows[arm].append(row)
                print(f"{arm:12} {row['wall_s']:6.1f} s passed={row['passed']} {goal}")
    stats = {arm: summary(arm_rows) for arm, arm_rows in rows.items()}
    base = stats["three_calls"]
    one = stats["single_call"]
    ratios = {
        "wall_p50": one["wall_p50_s"] / base["wall_p50_s"],
        "input_tokens": one["input_tokens_mean"] / base["input_tokens_mean"],
        "output_tokens": one["output_tokens_mean"] / base["output_tokens_mean"],
    }
    payload = {
        "benchmark": "local_model",
        "machine": machine(),
        "config": {"n": len(goals), "max_passes": args.max_passes, "goals": goals},
        "arms": stats,
        "single_vs_three": ratios,
        "runs": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(
        "\n| arm | n | gate passed | evidence check passed | wall p50 s | wall p99 s "
        "| calls | input tokens | output tokens |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for arm, s in stats.items():
        print(
            f"| {arm} | {s['n']} | {s['gate_passed']}/{s['n']} | "
            f"{s['pass1_evidence_ok']}/{s['n']} | {s['wall_p50_s']:.1f} | "
            f"{s['wall_p99_s']:.1f} | {s['calls_mean']:.1f} | {s['input_tokens_mean']:.0f} | "
            f"{s['output_tokens_mean']:.0f} |"
        )
    print(
        f"\nsingle / three calls: wall p50 {ratios['wall_p50']:.2f}x, input tokens "
        f"{ratios['input_tokens']:.2f}x, output tokens {ratios['output_tokens']:.2f}x; "
        f"wrote {args.out}"
    )


if __name__ == "__main__":
    main()
