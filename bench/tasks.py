"""Durable tasks: how soon a task starts, how many a fleet runs, how fast its text reaches a
follower, how soon a dead worker's task is taken over, how soon a cancel stops a call.

Real processes on each system database (the SQLite file of the embedded default, and
PostgreSQL): ``helios serve --no-worker`` takes the tasks over HTTP, ``helios worker``
processes run them, ``helios sim`` answers the model calls. Arms, per database:

- **start**: one task at a time (an ``ask`` of one token); latency = from just before the
  ``POST`` to the worker starting the model call (the time it stamps on the task's first
  ``stage`` event), beside **bare DBOS** in the same run: a workflow whose first step reads
  the clock, enqueued by this process on a queue with the same poll interval.
- **throughput**: ``--burst`` trivial ``ask`` tasks submitted at once (32 connections),
  with 1 and with 2 workers: tasks/s from the first submission to the last task finished.
- **chunk latency**: a streamed dialectic task (the simulator paces 50 tokens/s); for each
  text chunk its follower reads, read time - the time the worker wrote it.
- **takeover**: a worker SIGKILLed during a 20 s call; seconds until its task's next event
  comes from the other worker (``tasks.heartbeat_timeout_s`` is 10 s, the default).
- **cancel**: ``DELETE`` during a streamed call; seconds until the task's stream ends.

Targets (issue): start p50 <= 50 ms on PostgreSQL; >= 200 trivial tasks/s with 2 workers;
chunk latency p50 <= 25 ms; takeover <= 15 s.

Usage: .venv/bin/python bench/tasks.py [--postgres URL] [--burst N] [--out PATH]  (~4 min)
Writes bench/results/tasks.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import psycopg
import sseclient

from common import free_port, machine, temporary_data_dir
from helios.percentiles import percentile
from tasks_bare import bare_dbos_start_latency

HELIOS = Path(sys.executable).with_name("helios")
TASKS = "/api/v1/tasks"
MODEL = "openai:gpt-5.4-mini"


def summary(values: list[float]) -> dict[str, Any]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50": percentile(ordered, 0.5),
        "p99": percentile(ordered, 0.99),
        "max": ordered[-1] if ordered else None,
    }


class Fleet:
    def __init__(self, folder: Path, database: str, schema: str, sim_url: str) -> None:
        self.folder = folder
        self.config = folder / "helios.yaml"
        personas = "\n".join(
            f"  {r}: {{model: '{MODEL}'}}" for r in ("thesis", "antithesis", "synthesis", "judge")
        )
        self.config.write_text(
            f"providers:\n  openai: {{base_url: '{sim_url}/v1', api_key: b, max_retries: 0}}\n"
            f"default_model: '{MODEL}'\npersonas:\n{personas}\n"
            f"ledger: {{path: '{folder / 'ledger.sqlite3'}'}}\ncache: {{enabled: false}}\n"
            "monitor: {enabled: false}\n"
            "orchestration: {max_passes: 1, async_thesis: {enabled: false}}\n"
            f"tasks: {{system_database_url: '{database}', schema_name: {schema},"
            " worker_concurrency: 16}\n",
            encoding="utf-8",
        )
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [str(HELIOS), "--config", str(self.config), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.processes.append(process)
        return process

    def serve(self, port: int) -> None:
        self.start("serve", "--port", str(port), "--no-access-log", "--no-worker")
        wait_for(lambda: _answers(port), "helios serve")

    def worker(self, name: str) -> subprocess.Popen[bytes]:
        return self.start("worker", "--executor-id", name)

    def stop(self, process: subprocess.Popen[bytes], kill: bool = False) -> None:
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        process.wait(timeout=30)

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def _answers(port: int) -> bool:
    try:
        return httpx2.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code < 500
    except httpx2.HTTPError:
        return False


def wait_for(condition: Any, what: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise SystemExit(f"{what} did not come up")


def task(client: httpx2.Client, task_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"{TASKS}/{task_id}").json()
    return body


def wait_done(client: httpx2.Client, task_id: str, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        view = task(client, task_id)
        if view["status"] in ("succeeded", "failed", "cancelled"):
            return view
        time.sleep(0.01)
    raise SystemExit(f"task {task_id} did not finish")


def start_latency(port: int, client: httpx2.Client, n: int) -> list[float]:
    """Submission (before the POST) to the worker starting the task's model call (the
    ``stage`` item it writes then), one task at a time, in ms."""
    latencies = []
    for i in range(n):
        submitted = time.time()
        task_id = client.post(TASKS, json={"kind": "ask", "goal": f"start {i}?"}).json()["id"]
        started = next(item["at"] for _, item in follow(port, task_id) if item["type"] == "stage")
        latencies.append((started - submitted) * 1000)
    return latencies


async def burst(port: int, n: int) -> float:
    limits = httpx2.Limits(max_connections=32)
    async with httpx2.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=120
    ) as client:
        gate = asyncio.Semaphore(32)

        async def one(i: int) -> str:
            async with gate:
                answer = await client.post(TASKS, json={"kind": "ask", "goal": f"burst {i}?"})
                return str(answer.json()["id"])

        started = time.perf_counter()
        ids = await asyncio.gather(*(one(i) for i in range(n)))
        pending = set(ids)
        while pending:
            listed = await client.get(TASKS, params={"status": "succeeded", "limit": 1000})
            pending -= {t["id"] for t in listed.json()["tasks"]}
            if pending:
                await asyncio.sleep(0.05)
        return n / (time.perf_counter() - started)


def follow(port: int, task_id: str) -> list[tuple[float, dict[str, Any]]]:
    seen = []
    with (
        httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=None) as client,
        client.stream("GET", f"{TASKS}/{task_id}/events") as response,
    ):
        for event in sseclient.SSEClient(response.iter_bytes()).events():
            seen.append((time.time(), json.loads(event.data)))
            if event.event == "end":
                break
    return seen


def chunk_latency(port: int, client: httpx2.Client, runs: int) -> list[float]:
    latencies = []
    for i in range(runs):
        task_id = client.post(TASKS, json={"goal": f"Split the monolith? {i}"}).json()["id"]
        for read_at, item in follow(port, task_id):
            if item.get("type") == "chunk":
                latencies.append((read_at - item["at"]) * 1000)
    return latencies


def takeover(fleet: Fleet, port: int, client: httpx2.Client) -> float:
    doomed = fleet.worker("bench-doomed")
    time.sleep(2)
    task_id = client.post(TASKS, json={"kind": "ask", "goal": "slow takeover"}).json()["id"]
    while task(client, task_id)["status"] != "running":
        time.sleep(0.02)
    time.sleep(0.5)
    rescuer = fleet.worker("bench-rescuer")
    time.sleep(2)
    killed_at = time.monotonic()
    fleet.stop(doomed, kill=True)
    while task(client, task_id)["executor"] != "bench-rescuer":
        time.sleep(0.05)
    seconds = time.monotonic() - killed_at
    wait_done(client, task_id)
    fleet.stop(rescuer)
    return seconds


def cancel_latency(port: int, client: httpx2.Client, runs: int) -> list[float]:
    seconds = []
    for i in range(runs):
        task_id = client.post(TASKS, json={"kind": "ask", "goal": f"long cancel {i}"}).json()["id"]
        while task(client, task_id)["status"] != "running":
            time.sleep(0.02)
        time.sleep(0.3)
        asked = time.monotonic()
        client.delete(f"{TASKS}/{task_id}")
        follow(port, task_id)  # ends when the workflow has ended
        seconds.append(time.monotonic() - asked)
    return seconds


@contextlib.contextmanager
def fleet_on(database: str, schema: str, *sim_options: str) -> Iterator[tuple[Fleet, int]]:
    """A fresh data dir, ``helios sim SIM_OPTIONS`` and an API-only ``helios serve`` on
    ``database``; yields the fleet (to start workers on) and the server's port."""
    with temporary_data_dir() as folder:
        sim_port = free_port()
        sim = subprocess.Popen(
            [str(HELIOS), "sim", "--port", str(sim_port), *sim_options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        fleet = Fleet(folder, database, schema, f"http://127.0.0.1:{sim_port}")
        try:
            port = free_port()
            fleet.serve(port)
            yield fleet, port
        finally:
            fleet.close()
            sim.terminate()
            sim.wait()


def measure(database: str, schema: str, label: str, args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"database": label}
    with fleet_on(database, schema, "--reply-tokens", "1") as (fleet, port):
        client = httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        one = fleet.worker("bench-1")
        start_latency(port, client, 5)  # warm up
        results["start_ms"] = summary(start_latency(port, client, args.starts))
        results["throughput_1_worker"] = asyncio.run(burst(port, args.burst))
        two = fleet.worker("bench-2")
        time.sleep(3)
        results["throughput_2_workers"] = asyncio.run(burst(port, args.burst))
        for process in (one, two):
            fleet.stop(process)
        results["bare_dbos_start_ms"] = summary(
            bare_dbos_start_latency(database, schema, args.starts)
        )
    results.update(paced(database, schema, args))
    return results


def paced(database: str, schema: str, args: argparse.Namespace) -> dict[str, Any]:
    """Arms that need slow model calls: takeover and cancel (20 s replies), chunk latency."""
    results: dict[str, Any] = {}
    slow = ("--reply-tokens", "400", "--tokens-per-s", "20")
    with fleet_on(database, schema + "_p", *slow) as (fleet, port):
        client = httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        results["takeover_s"] = takeover(fleet, port, client)
        worker = fleet.worker("bench-paced")
        time.sleep(2)
        results["cancel_s"] = summary(cancel_latency(port, client, args.cancels))
        fleet.stop(worker)
    paced_50 = ("--reply-tokens", "50", "--tokens-per-s", "50")
    with fleet_on(database, schema + "_c", *paced_50) as (fleet, port):
        fleet.worker("bench-chunks")
        client = httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        time.sleep(2)
        results["chunk_ms"] = summary(chunk_latency(port, client, args.streams))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_pg = os.environ.get(
        "HELIOS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
    )
    parser.add_argument("--postgres", default=default_pg)
    parser.add_argument("--starts", type=int, default=100)
    parser.add_argument("--burst", type=int, default=300)
    parser.add_argument("--streams", type=int, default=3)
    parser.add_argument("--cancels", type=int, default=5)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "tasks.json"
    )
    args = parser.parse_args()
    runs = []
    with temporary_data_dir() as folder:
        runs.append(measure(f"sqlite:///{folder / 'tasks.sqlite'}", "dbos", "sqlite", args))
    if not args.skip_postgres:
        schema = f"bench_tasks_{uuid.uuid4().hex[:8]}"
        try:
            runs.append(measure(args.postgres, schema, "postgres", args))
        finally:
            with psycopg.connect(args.postgres, autocommit=True) as db:
                for suffix in ("", "_p", "_c", "_bare"):
                    db.execute(f'DROP SCHEMA IF EXISTS "{schema}{suffix}" CASCADE')
    document = {"machine": machine(), "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    for run in runs:
        print_run(run)


def print_run(run: dict[str, Any]) -> None:
    def ms(s: dict[str, Any]) -> str:
        return f"p50 {s['p50']:.1f} / p99 {s['p99']:.1f} ms"

    print(f"\n{run['database']}")
    print(f"  start (Helios task)     {ms(run['start_ms'])}")
    print(f"  start (bare DBOS)       {ms(run['bare_dbos_start_ms'])}")
    print(f"  throughput, 1 worker    {run['throughput_1_worker']:.0f} tasks/s")
    print(f"  throughput, 2 workers   {run['throughput_2_workers']:.0f} tasks/s")
    print(f"  chunk latency           {ms(run['chunk_ms'])}")
    print(f"  takeover                {run['takeover_s']:.1f} s")
    cancel = run["cancel_s"]
    print(f"  cancel → stream ended   p50 {cancel['p50']:.2f} s, max {cancel['max']:.2f} s")


if __name__ == "__main__":
    main()
