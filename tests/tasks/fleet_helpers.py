"""Real processes for the durable-task tests: ``helios serve`` and ``helios worker`` over one
system database (SQLite file, or a PostgreSQL schema of the test's own), the provider
simulator behind them, and what the tests ask of them over HTTP and from the ledger."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import sseclient

HELIOS = Path(sys.executable).with_name("helios")
MODEL = "openai:gpt-5.4-mini"
TASKS = "/api/v1/tasks"
ROLES = ("thesis", "antithesis", "synthesis", "judge")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(
    path: Path, *, sim_url: str, ledger: Path, database_url: str, schema: str = "dbos"
) -> Path:
    personas = "\n".join(f"  {role}: {{model: '{MODEL}'}}" for role in ROLES)
    path.write_text(
        "providers:\n"
        f"  openai: {{base_url: '{sim_url}/v1', api_key: test, max_retries: 0}}\n"
        f"default_model: '{MODEL}'\n"
        f"personas:\n{personas}\n"
        f"ledger: {{path: '{ledger}', flush_interval_s: 0.05}}\n"
        "cache: {enabled: false}\n"
        "orchestration: {max_passes: 1, async_thesis: {enabled: false}}\n"
        "tasks:\n"
        f"  system_database_url: '{database_url}'\n"
        f"  schema_name: {schema}\n"
        "  poll_interval_s: 0.05\n"
        "  heartbeat_interval_s: 0.5\n"
        "  heartbeat_timeout_s: 3\n",
        encoding="utf-8",
    )
    return path


@dataclass
class Fleet:
    """Processes started by a test, all killed at its end."""

    config: Path
    data_dir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HELIOS_TASKS__")}
        env["HELIOS_DATA_DIR"] = str(self.data_dir)
        return env

    def serve(self, port: int, *, executor_id: str, worker: bool = True) -> subprocess.Popen[bytes]:
        args = [str(HELIOS), "--config", str(self.config), "serve", "--port", str(port)]
        args += ["--no-access-log", "--worker" if worker else "--no-worker"]
        env = self._env()
        env["HELIOS_TASKS__EXECUTOR_ID"] = executor_id
        process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.processes.append(process)
        wait_until_serving(port, process)
        return process

    def worker(self, executor_id: str) -> subprocess.Popen[bytes]:
        args = [str(HELIOS), "--config", str(self.config), "worker", "--executor-id", executor_id]
        process = subprocess.Popen(
            args, env=self._env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.processes.append(process)
        return process

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            if process.stderr is not None:
                process.stderr.close()


def kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def wait_until_serving(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1].decode(errors="replace")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("helios serve did not start")


def api(port: int) -> httpx2.Client:
    return httpx2.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0)


def submit(port: int, **body: Any) -> str:
    with api(port) as client:
        response = client.post(TASKS, json={"goal": "Should we split the monolith?", **body})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def events(port: int, task_id: str, last_id: str | None = None) -> Iterator[sseclient.Event]:
    headers = {"Last-Event-ID": last_id} if last_id else {}
    with (
        api(port) as client,
        client.stream(
            "GET", f"{TASKS}/{task_id}/events", headers=headers, timeout=None
        ) as response,
    ):
        assert response.status_code == 200, response.read()
        yield from sseclient.SSEClient(response.iter_bytes()).events()


def wait_for_stage(port: int, task_id: str, stage: str) -> None:
    for event in events(port, task_id):
        if event.event == "stage" and json.loads(event.data)["stage"] == stage:
            return
    raise AssertionError(f"task {task_id} ended before its {stage}")


def wait_for_status(port: int, task_id: str, wanted: str, timeout_s: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    with api(port) as client:
        while time.monotonic() < deadline:
            task: dict[str, Any] = client.get(f"{TASKS}/{task_id}").json()
            if task["status"] == wanted:
                return task
            assert task["status"] not in {"failed", "cancelled"} - {wanted}, task
            time.sleep(0.1)
    raise AssertionError(f"task {task_id} is still {task['status']}, not {wanted}")


def ledger_events(ledger: Path, task_id: str) -> list[dict[str, Any]]:
    with sqlite3.connect(ledger) as connection:
        rows = connection.execute(
            "SELECT body FROM events WHERE task_id = ? ORDER BY rowid", (task_id,)
        ).fetchall()
    connection.close()
    return [json.loads(body) for (body,) in rows]


def calls_by_stage(records: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        if record["type"] == "persona_llm_run":
            counts[record["stage"]] = counts.get(record["stage"], 0) + 1
    return counts


def unique_schema() -> str:
    return f"helios_tasks_{uuid.uuid4().hex[:10]}"
