"""HTTP ``/lookup`` throughput and latency: one uvicorn worker, load from another process.

The server (bench/cache_server.py) is ``create_app(settings)`` under uvicorn in a
subprocess, one worker, with ``httptools`` and ``uvloop`` when installed and the access log
off; two floors run the same way (a bare ASGI app and a plain FastAPI route answering the
same bytes), so that the figures say how much of the cost is Helios's. The load generator
is a second subprocess: N keep-alive
HTTP/1.1 connections over raw asyncio streams (uvloop when installed), each sending one
request, reading the whole answer, then sending the next (no pipelining). It times every
request, counts the answers that report a hit, and reports its own CPU time and the
server's (from ``/proc``) over the measured window, so that a saturated load generator
would show instead of passing for a slow server.

Usage (bench/cache.py drives it; this is the load generator's entry point):
    python bench/cache_http.py --port P --bodies FILE.jsonl --concurrency C
        --duration S --warmup S --server-pid PID
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cache_common import (
    MODEL_SPEC,
    SYSTEM,
    TASK_TYPE,
    THRESHOLD,
    SemanticTexts,
    l2_questions,
    reply_text,
)
from cache_server import server_options
from common import free_port, temporary_data_dir
from helios.percentiles import percentile

HTTP_L2_KEYS = 200
PREFIX = "/api/v1/helios/cache"
# the answering layer, near the start of a /lookup answer; "null" on a miss
LAYER = re.compile(rb'"layer":\s*(?:"(L\d)_|null)')


# -- the client ----------------------------------------------------------------------------
def post_bytes(path: str, body: dict[str, Any]) -> bytes:
    """One complete HTTP/1.1 request, written with a single ``write`` (no Nagle stalls)."""
    payload = json.dumps(body).encode()
    head = (
        f"POST {PREFIX}{path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def send(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lowered = head.lower()
        at = lowered.find(b"content-length:")
        if at < 0:
            raise RuntimeError(f"answer without content-length: {head[:200]!r}")
        length = int(lowered[at + 15 : lowered.find(b"\r\n", at)])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def cpu_ticks(pid: int) -> float:
    """Seconds of CPU (user + system, all threads) used by ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(
    port: int,
    requests: Sequence[bytes],
    concurrency: int,
    duration_s: float,
    warmup_s: float,
    server_pid: int,
) -> dict[str, Any]:
    connections = [await Connection.open(port) for _ in range(concurrency)]
    start = time.perf_counter_ns()
    measure_from = start + int(warmup_s * 1e9)
    measure_to = measure_from + int(duration_s * 1e9)
    latencies: list[int] = []
    counts = {"ok": 0, "errors": 0, "L2": 0, "L3": 0, "miss": 0, "?": 0}
    usage: dict[str, float] = {}

    async def worker(index: int, connection: Connection) -> None:
        i = index
        while True:
            sent = time.perf_counter_ns()
            if sent >= measure_to:
                return
            status, body = await connection.send(requests[i % len(requests)])
            done = time.perf_counter_ns()
            i += concurrency
            if measure_from <= done <= measure_to:
                latencies.append(done - sent)
                counts["ok" if status == 200 else "errors"] += 1
                found = LAYER.search(body, 0, 120)
                layer = found.group(1) if found is not None else b"?"
                counts[layer.decode() if layer else "miss"] += 1

    async def clock() -> None:
        await asyncio.sleep(max(0.0, (measure_from - time.perf_counter_ns()) / 1e9))
        usage.update(client=time.process_time(), server=cpu_ticks(server_pid))
        await asyncio.sleep(max(0.0, (measure_to - time.perf_counter_ns()) / 1e9))
        usage["client"] = time.process_time() - usage["client"]
        usage["server"] = cpu_ticks(server_pid) - usage["server"]

    try:
        await asyncio.gather(clock(), *(worker(i, c) for i, c in enumerate(connections)))
    finally:
        for connection in connections:
            connection.close()
    window_s = (measure_to - measure_from) / 1e9
    ms = [value / 1e6 for value in latencies]
    return {
        "concurrency": concurrency,
        "window_s": window_s,
        "requests": len(ms),
        "requests_per_s": len(ms) / window_s,
        "p50_ms": statistics.median(ms) if ms else None,
        "p99_ms": percentile(ms, 0.99) if ms else None,
        "counts": counts,
        "client_cpu": usage["client"] / window_s,
        "server_cpu": usage["server"] / window_s,
    }


def run_async(coroutine: Any) -> Any:
    """Under uvloop when installed, as the server runs."""
    if importlib.util.find_spec("uvloop"):
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coroutine)
    return asyncio.run(coroutine)


# -- the driver (in bench/cache.py's process) ---------------------------------------------
@contextlib.contextmanager
def running_server(options: list[str], folder: Path, name: str) -> Iterator[tuple[int, int]]:
    """``(port, pid)`` of bench/cache_server.py with ``options``, answering ``/health``."""
    log_path = folder / f"{name}-server.log"
    log = log_path.open("wb")
    port = free_port()
    server = Path(__file__).with_name("cache_server.py")
    process = subprocess.Popen(
        [sys.executable, str(server), "--port", str(port), *options],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_up(port, process, log_path)
        yield port, process.pid
    except Exception:
        code = process.poll()
        if code is not None:  # the server died under the load: say how
            tail = log_path.read_text(errors="replace")[-3000:]
            print(f"the {name} server exited with {code}:\n{tail}", file=sys.stderr)
        raise
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def wait_until_up(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    request = f"GET {PREFIX}/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(request)
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"the benchmark server did not start:\n{log.read_text()[-3000:]}")


async def store_all(port: int, bodies: Sequence[dict[str, Any]], concurrency: int = 2) -> None:
    """POST /store each body; fails loudly when the server refuses one."""
    connections = [await Connection.open(port) for _ in range(concurrency)]

    async def worker(index: int, connection: Connection) -> None:
        for body in bodies[index::concurrency]:
            status, answer = await connection.send(post_bytes("/store", body))
            if status != 200 or b'"layers_stored": []' in answer:
                raise RuntimeError(f"/store failed ({status}): {answer[:300]!r}")

    try:
        await asyncio.gather(*(worker(i, c) for i, c in enumerate(connections)))
    finally:
        for connection in connections:
            connection.close()


def run_load(
    port: int,
    pid: int,
    bodies: Sequence[dict[str, Any]],
    folder: Path,
    concurrency: int,
    duration_s: float,
    warmup_s: float,
) -> dict[str, Any]:
    bodies_file = folder / "bodies.jsonl"
    bodies_file.write_text("".join(json.dumps(body) + "\n" for body in bodies))
    command = [
        sys.executable, __file__, "--port", str(port), "--bodies", str(bodies_file),
        "--concurrency", str(concurrency), "--duration", str(duration_s),
        "--warmup", str(warmup_s), "--server-pid", str(pid),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the load generator failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def conversation(question: str) -> dict[str, Any]:
    return {"input_text": question, "task_type": TASK_TYPE, "system_prompt": SYSTEM}


def lookup_body(question: str) -> dict[str, Any]:
    return {**conversation(question), "model": MODEL_SPEC}


def store_body(question: str, reply: str, *, l3: bool) -> dict[str, Any]:
    return {
        **conversation(question),
        "response_data": reply,
        "model_used": MODEL_SPEC,
        "tokens_used": len(reply) // 4,
        "store_in_l3": l3,
    }


def scenario_settings(
    folder: Path, backend: str, redis_url: str | None, prefix: str
) -> dict[str, Any]:
    cache: dict[str, Any] = {
        "backend": backend,
        "path": str(folder / f"http-{backend}-l2.sqlite3"),
        "max_entries": 10_000,
        "semantic": {"path": str(folder / f"http-{backend}-l3.sqlite3"), "threshold": THRESHOLD},
    }
    if backend == "redis":
        cache.update(redis_url=redis_url, redis_prefix=f"{prefix}:http")
    return {"cache": cache, "ledger": {"enabled": False}}


def measure_http(
    folder: Path,
    texts: SemanticTexts,
    redis_url: str | None,
    prefix: str,
    concurrency: int,
    duration_s: float,
    warmup_s: float,
) -> dict[str, Any]:
    """L2 hits (memory, and Redis when given) and L3 lookups, each at concurrency 1 (the
    unloaded latency) and at ``concurrency`` (throughput, and the latency at that load);
    then the two floors answering the recorded L2 hit at ``concurrency``."""
    reply = reply_text()
    l2 = l2_questions(HTTP_L2_KEYS)
    l2_bodies = [lookup_body(q) for q in l2]
    runs: dict[str, Any] = {}

    def run(name: str, port: int, pid: int, bodies: list[dict[str, Any]], level: int) -> None:
        print(f"  http {name}", flush=True)
        runs[name] = run_load(port, pid, bodies, folder, level, duration_s, warmup_s)

    answer_file = folder / "l2-hit-answer.json"
    for backend in ["memory"] + (["redis"] if redis_url else []):
        settings_file = folder / f"{backend}-settings.json"
        settings_file.write_text(json.dumps(scenario_settings(folder, backend, redis_url, prefix)))
        with running_server(["--settings", str(settings_file)], folder, backend) as (port, pid):
            asyncio.run(store_all(port, [store_body(q, reply, l3=False) for q in l2]))
            if backend == "memory":
                answer_file.write_bytes(asyncio.run(answer_of(port, l2_bodies[0])))
            scenarios = [("L2 hit", l2_bodies)]
            if backend == "memory":
                asyncio.run(store_all(port, [store_body(q, reply, l3=True) for q in texts.stored]))
                scenarios.append(("L2 miss -> L3", [lookup_body(q) for q in texts.lookups]))
            for scenario, bodies in scenarios:
                for level in (1, concurrency):
                    name = f"Helios {backend}: {scenario}, {connections(level)}"
                    run(name, port, pid, bodies, level)
                    runs[name].update(server="helios", backend=backend, scenario=scenario)
    for floor in ("asgi", "fastapi"):
        options = ["--floor", floor, "--answer", str(answer_file)]
        with running_server(options, folder, floor) as (port, pid):
            name = f"floor {floor}: fixed answer, {connections(concurrency)}"
            run(name, port, pid, l2_bodies, concurrency)
            runs[name].update(server=f"floor {floor}", backend=None, scenario="floor")
    return {
        "server": server_options(),
        "l2_keys": HTTP_L2_KEYS,
        "answer_bytes": len(answer_file.read_bytes()),
        "runs": runs,
    }


def connections(level: int) -> str:
    return f"{level} connection{'s' if level > 1 else ''}"


async def answer_of(port: int, body: dict[str, Any]) -> bytes:
    connection = await Connection.open(port)
    try:
        status, answer = await connection.send(post_bytes("/lookup", body))
    finally:
        connection.close()
    if status != 200 or LAYER.search(answer, 0, 120) is None:
        raise RuntimeError(f"/lookup failed ({status}): {answer[:300]!r}")
    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bodies", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--server-pid", type=int, required=True)
    args = parser.parse_args()
    lines = args.bodies.read_text().splitlines()
    requests = [post_bytes("/lookup", json.loads(line)) for line in lines]
    with temporary_data_dir():  # the load generator runs no Helios; the rule holds anyway
        result = run_async(
            load(args.port, requests, args.concurrency, args.duration, args.warmup, args.server_pid)
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
