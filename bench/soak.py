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
and the errors the gateway then reports as the provider's (429, 502, 503, 504, or a stream
the provider broke after its text had gone out) are counted apart, as "caused by injected
faults". One clock runs the whole soak: request *i* is due at *i* / rate from the start
whatever happened to earlier ones (a slow answer never delays the next request), and counts
in the window of its due time.

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
import math
import os
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
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
REQUEST_TIMEOUT_S = 360.0
"""Beyond the gateway's own per-call deadline (300 s), so the server decides every outcome."""


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


def outcome(answer: Answer, kind: str) -> str | None:
    """``None`` for an answer with text, else what went wrong: the HTTP status, "200 broken
    stream" for a stream that failed after its headers (an in-stream error event, or no
    ``[DONE]``), or the client's error."""
    if answer.error is not None:
        return answer.error.split(":", 1)[0][:60]
    if answer.status != 200:
        return str(answer.status)
    if not answer.complete:
        return "200 broken stream"
    # An Anthropic answer's text is in content blocks ("text": "..."), not a "content" string.
    if answer.first_ns > 0 or (kind == "messages" and b'"text":' in answer.body_start):
        return None
    return "200 without text"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Window:
    """What the requests due in one window got, and the server as the window ended."""

    requests: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    first_errors: list[str] = field(default_factory=list)
    rss_mib: float = 0.0
    server_cpu_cores: float = 0.0
    in_flight: int = 0

    def row(self, at_s: float) -> dict[str, Any]:
        return {
            "at_s": at_s,
            "requests": self.requests,
            "errors": dict(self.errors),
            "first_errors": self.first_errors,
            "p50_ms": statistics.median(self.latencies_ms) if self.latencies_ms else None,
            "p99_ms": percentile(self.latencies_ms, 0.99) if self.latencies_ms else None,
            "rss_mib": self.rss_mib,
            "server_cpu_cores": self.server_cpu_cores,
            "in_flight_at_end": self.in_flight,
        }


async def soak(port: int, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    """One clock for the whole run: request *i* is due at *i* / rate from the start, whatever
    happened to earlier ones, and counts in the window of its due time; memory and CPU are
    sampled as each window's time ends."""
    count = round(args.rate * args.minutes * 60)
    windows = [Window() for _ in range(max(1, math.ceil(args.minutes * 60 / args.window)))]
    traffic = Traffic(seed=args.seed, fresh=count)
    pool = Pool(port, limit=1024)
    await pool.fill(8)
    for kind in MIX:  # the first request of each kind, outside the measured run
        item = Planned(kind, chat("Warm up please?", stream=kind == "chat_stream"))
        if kind == "messages":
            item = Planned(kind, messages("Warm up please?"))
        answer = await pool.exchange(item.request, item.streaming, 60.0)
        if outcome(answer, kind) is not None and not args.sim_fault_rate:
            raise SystemExit(f"warm-up {kind} answered {answer}")
    print(f"start RSS {rss_mib(pid):.1f} MiB", flush=True)
    in_flight = 0
    started = 0.0  # set once every request is scheduled: creating them takes seconds

    async def one(index: int, item: Planned) -> None:
        nonlocal in_flight
        due = started + index / args.rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        window = windows[min(len(windows) - 1, int(index / args.rate / args.window))]
        window.requests += 1
        in_flight += 1
        try:
            answer = await pool.exchange(item.request, item.streaming, REQUEST_TIMEOUT_S)
        finally:
            in_flight -= 1
        wrong = outcome(answer, item.kind)
        if wrong is None:
            window.latencies_ms.append((answer.end_ns / 1e9 - due) * 1e3)
            return
        window.errors[wrong] += 1
        if len(window.first_errors) < 3:
            window.first_errors.append(f"{item.kind}: {wrong}: {answer.body_start[:160]!r}")

    async def sampler() -> None:
        cpu = cpu_seconds(pid)
        for number, window in enumerate(windows):
            end = started + (number + 1) * args.window
            await asyncio.sleep(max(0.0, end - time.perf_counter()))
            now = cpu_seconds(pid)
            window.rss_mib, window.server_cpu_cores = rss_mib(pid), (now - cpu) / args.window
            window.in_flight, cpu = in_flight, now
            row = window.row((number + 1) * args.window)
            print(
                f"  {row['at_s']:>5.0f} s: {row['requests']} due, errors "
                f"{row['errors'] or 0}, p50 {row['p50_ms'] or 0:.1f} ms, p99 "
                f"{row['p99_ms'] or 0:.1f} ms (answered so far), RSS {row['rss_mib']:.1f} MiB, "
                f"CPU {row['server_cpu_cores']:.2f} cores, {in_flight} in flight",
                flush=True,
            )

    requests = [asyncio.ensure_future(one(i, traffic.next())) for i in range(count)]
    started = time.perf_counter() + 0.05
    sampling = asyncio.create_task(sampler())
    await asyncio.gather(*requests)
    await sampling
    pool.close()
    every = [value for window in windows for value in window.latencies_ms]
    return {
        "windows": [window.row((n + 1) * args.window) for n, window in enumerate(windows)],
        "latency_ms": {
            "n": len(every),
            "p50": statistics.median(every) if every else None,
            "p99": percentile(every, 0.99) if every else None,
        },
    }


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
    """An error the gateway gives when the provider failed: a status, or a stream the
    provider broke after its text had gone out (the gateway cannot take that text back)."""
    if status == "200 broken stream":
        return True
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
            measured = run_async(soak(port, process.pid, args))
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
        **measured,
        "verdict": verdict(measured["windows"], args.window, faults=args.sim_fault_rate > 0),
        "wall_s": time.monotonic() - started,
    }
    print(json.dumps({"latency_ms": result["latency_ms"], **result["verdict"]}, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
