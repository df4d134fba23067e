"""Soak: ``helios serve`` under mixed gateway traffic at a constant rate for minutes, with the
provider simulator behind it: errors, latency and the server's memory every 30 s.

Processes (on loopback, started here and stopped at the end): ``helios sim`` (32-word
replies, no added delay; pinned to the last core, the load generator beside it) and one
``helios serve`` process on the other cores, all defaults (ledger on, L2 on SQLite) but the
semantic layer, which is off as in the gateway benchmark's main arm (``--semantic`` turns
it on), with its own ``HELIOS_DATA_DIR``.

Traffic: an open model (bench/gateway_load.py: request *i* is due at *i* / rate on a fixed
clock, its latency counted from that due time), each request's kind drawn from a seeded
RNG: 45 % non-streamed chat misses, 20 % streamed chat misses (new prompts), 25 % chat
repeats of 50 prompts (L2 hits once stored) and 10 % Anthropic Messages misses. Every
answer is checked (a 200 with text; a stream ends with ``[DONE]``); anything else is an
error, classed by status. ``--sim-fault-rate`` makes the simulator inject faults (seeded)
and the errors the gateway then reports as the provider's (429, 502, 503, 504) are counted
apart, as "caused by injected faults".

Every ``--window`` seconds (30): requests, errors by status, p50/p99 latency and the server's
resident memory (RSS, from ``/proc``). Target: RSS grows ≤ 10 % from the end of the first
minute to the end, and no error that was not caused by an injected fault.

Usage: python bench/soak.py [--minutes 10] [--rate 200] [--window 30] [--semantic]
    [--sim-fault-rate 0] [--out bench/results/soak.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import free_port, machine, start_simulator, temporary_data_dir
from gateway import prompts, server, wait_ready
from gateway_load import Answer, Pool, pinned, post, run_async
from helios import __version__ as helios_version
from helios.percentiles import percentile

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "soak.json"
MODEL = "gpt-5-mini"
REPLY_WORDS = 32
REPEATED_PROMPTS = 50
MIX = {"chat": 0.45, "chat_stream": 0.20, "chat_repeat": 0.25, "messages": 0.10}
FAULT_STATUSES = frozenset({429, 502, 503, 504})
"""What the gateway answers when the provider failed (after its retries)."""
TARGET_RSS_GROWTH = 0.10


@dataclass(frozen=True)
class Planned:
    kind: str
    request: bytes

    @property
    def streaming(self) -> bool:
        return self.kind == "chat_stream"


def chat(prompt: str, stream: bool) -> bytes:
    body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "stream": stream}
    return post("/v1/chat/completions", json.dumps(body).encode())


def messages(prompt: str) -> bytes:
    body = {
        "model": MODEL,
        "max_tokens": 256,
        "messages": [{"role": "user", "content": prompt}],
    }
    return post("/v1/messages", json.dumps(body).encode(), {"anthropic-version": "2023-06-01"})


class Traffic:
    """The seeded stream of requests: kinds drawn by ``MIX``, fresh prompts never repeat."""

    def __init__(self, seed: int, fresh: int) -> None:
        self.rng = random.Random(seed)
        self.fresh = iter(prompts(fresh + REPEATED_PROMPTS, seed=seed))
        self.repeated = [next(self.fresh) for _ in range(REPEATED_PROMPTS)]
        self.kinds = list(MIX)
        self.weights = list(MIX.values())

    def next(self) -> Planned:
        kind = self.rng.choices(self.kinds, self.weights)[0]
        if kind == "chat_repeat":
            return Planned(kind, chat(self.rng.choice(self.repeated), stream=False))
        prompt = next(self.fresh)
        if kind == "messages":
            return Planned(kind, messages(prompt))
        return Planned(kind, chat(prompt, stream=kind == "chat_stream"))


def served(answer: Answer, kind: str) -> bool:
    if answer.error is not None or answer.status != 200 or not answer.complete:
        return False
    # An Anthropic answer's text is in content blocks ("text": "..."), not a "content" string.
    return answer.first_ns > 0 or (kind == "messages" and b'"text":' in answer.body_start)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def window(pool: Pool, planned: list[Planned], rate: float, pid: int) -> dict[str, Any]:
    """One window's requests at ``rate``, whatever their kinds: request *i* is due at
    *i* / rate from the window's start, and its latency counts from that due time."""
    interval = 1.0 / rate
    started = time.perf_counter()
    cpu_before = cpu_seconds(pid)

    async def one(index: int, item: Planned) -> tuple[str, Answer, float]:
        due = started + index * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        answer = await pool.exchange(item.request, item.streaming, 120.0)
        latency_ms = (answer.end_ns / 1e9 - due) * 1e3 if answer.end_ns else float("nan")
        return item.kind, answer, latency_ms

    results = await asyncio.gather(*(one(i, item) for i, item in enumerate(planned)))
    seconds = time.perf_counter() - started
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    by_kind: Counter[str] = Counter()
    first_errors: list[str] = []
    for kind, answer, latency in results:
        by_kind[kind] += 1
        if served(answer, kind):
            latencies.append(latency)
            continue
        label = str(answer.status) if answer.status else (answer.error or "no answer")[:60]
        statuses[label] += 1
        if len(first_errors) < 3:
            first_errors.append(f"{kind}: {answer.status} {answer.error} {answer.body_start!r}")
    return {
        "requests": len(results),
        "answered_per_s": len(results) / seconds,
        "errors": dict(statuses),
        "first_errors": first_errors,
        "by_kind": dict(by_kind),
        "p50_ms": statistics.median(latencies) if latencies else None,
        "p99_ms": percentile(latencies, 0.99) if latencies else None,
        "server_cpu_cores": (cpu_seconds(pid) - cpu_before) / seconds,
        "rss_mib": rss_mib(pid),
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def soak(port: int, pid: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    windows = max(1, round(args.minutes * 60 / args.window))
    per_window = round(args.rate * args.window)
    traffic = Traffic(seed=args.seed, fresh=windows * per_window)
    pool = Pool(port, limit=256)
    await pool.fill(8)
    # warm: the first request of each kind outside the measured windows
    for kind in MIX:
        item = Planned(kind, chat("Warm up please?", stream=kind == "chat_stream"))
        if kind == "messages":
            item = Planned(kind, messages("Warm up please?"))
        answer = await pool.exchange(item.request, item.streaming, 60.0)
        if not served(answer, kind):
            raise SystemExit(f"warm-up {kind} answered {answer}")
    print(f"start RSS {rss_mib(pid):.1f} MiB", flush=True)
    rows: list[dict[str, Any]] = []
    for number in range(windows):
        planned = [traffic.next() for _ in range(per_window)]
        row = await window(pool, planned, args.rate, pid)
        row["at_s"] = (number + 1) * args.window
        rows.append(row)
        print(
            f"  {row['at_s']:>4} s: {row['requests']} requests, {row['answered_per_s']:.0f}/s, "
            f"errors {row['errors'] or 0}, p50 {row['p50_ms'] or 0:.1f} ms, "
            f"p99 {row['p99_ms'] or 0:.1f} ms, RSS {row['rss_mib']:.1f} MiB, "
            f"CPU {row['server_cpu_cores']:.2f} cores",
            flush=True,
        )
        pool.trim(16)
    pool.close()
    return rows


def verdict(rows: list[dict[str, Any]], window_s: float, faults: bool) -> dict[str, Any]:
    after_minute = [row for row in rows if row["at_s"] >= 60] or rows
    baseline = after_minute[0]["rss_mib"]
    final = rows[-1]["rss_mib"]
    growth = (final - baseline) / baseline
    errors: Counter[str] = Counter()
    for row in rows:
        errors.update(row["errors"])
    injected = sum(n for status, n in errors.items() if faults and _fault_status(status))
    other = sum(errors.values()) - injected
    requests = sum(row["requests"] for row in rows)
    return {
        "requests": requests,
        "errors": dict(errors),
        "error_rate": sum(errors.values()) / requests,
        "errors_from_injected_faults": injected,
        "other_errors": other,
        "rss_mib_after_first_minute": baseline,
        "rss_mib_at_end": final,
        "rss_growth": growth,
        "rss_target_met": growth <= TARGET_RSS_GROWTH,
        "errors_target_met": other == 0,
        "window_s": window_s,
    }


def _fault_status(status: str) -> bool:
    return status.isdigit() and int(status) in FAULT_STATUSES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--window", type=float, default=30.0, help="seconds per sample")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--semantic", action="store_true", help="L3 on (the local embedder)")
    parser.add_argument(
        "--sim-fault-rate", type=float, default=0.0, help="the simulator's injected fault rate"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="results file")
    args = parser.parse_args()
    started = time.monotonic()
    helios_cli = Path(sys.executable).with_name("helios")
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    with temporary_data_dir() as folder, contextlib.ExitStack() as stack:
        sim_port = free_port()
        options = ["--reply-tokens", str(REPLY_WORDS), "--seed", str(args.seed)]
        if args.sim_fault_rate:
            options += ["--fault-rate", str(args.sim_fault_rate)]
        simulator = start_simulator(sim_port, *options)
        stack.callback(simulator.wait, 10)
        stack.callback(simulator.terminate)
        sim_url = f"http://127.0.0.1:{sim_port}"
        settings = folder / "settings.json"
        settings.write_text(
            json.dumps(
                {
                    "providers": {
                        "openai": {"api_key": "bench", "base_url": f"{sim_url}/v1"},
                    },
                    "cache": {"semantic": {"enabled": args.semantic}},
                }
            )
        )
        port = free_port()
        command = [str(helios_cli), "--config", str(settings), "serve", "--port", str(port),
                   "--no-access-log", "--log-level", "warning"]  # fmt: skip
        log = folder / "helios.log"
        process: subprocess.Popen[bytes] = stack.enter_context(server(command, log))
        wait_ready(port, "/health", process, log)
        with pinned({cores[-1]} if len(cores) > 1 else set()):
            rows = run_async(soak(port, process.pid, args))
    result = {
        "benchmark": "soak",
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "versions": {"helios": helios_version},
        "config": {
            "minutes": args.minutes,
            "rate": args.rate,
            "window_s": args.window,
            "seed": args.seed,
            "mix": MIX,
            "semantic": args.semantic,
            "sim_fault_rate": args.sim_fault_rate,
            "reply_words": REPLY_WORDS,
        },
        "windows": rows,
        "verdict": verdict(rows, args.window, faults=args.sim_fault_rate > 0),
        "wall_s": time.monotonic() - started,
    }
    print(json.dumps(result["verdict"], indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
