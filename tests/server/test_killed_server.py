"""A ``helios serve`` killed with SIGKILL right after answering has lost none of its
answers' events.

The ledger's writer batches events off the loop; a server that answered before the batch
was committed would lose the last answers' records in a crash. The flush interval here is
5 s, so without the commit before each answer every event below would still be queued when
the process dies.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import openai

from helios.sim import SimServer

HELIOS = Path(sys.executable).with_name("helios")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_serving(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1].decode(errors="replace")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("helios serve did not start")


def gateway_events(ledger: Path) -> dict[str, int]:
    """Each request id's ``gateway_request`` status."""
    with sqlite3.connect(ledger) as connection:
        rows = connection.execute(
            "SELECT task_id, body FROM events WHERE type = 'gateway_request'"
        ).fetchall()
    connection.close()
    return {task_id: int(json.loads(data)["status"]) for task_id, data in rows}


def engine_event_types(ledger: Path, task_id: str) -> set[str]:
    with sqlite3.connect(ledger) as connection:
        rows = connection.execute("SELECT type FROM events WHERE task_id = ?", (task_id,))
        types = {kind for (kind,) in rows}
    connection.close()
    return types


def test_a_server_killed_after_answering_lost_no_event_of_its_answers(
    sim: SimServer, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    config = tmp_path / "helios.yaml"
    config.write_text(
        "providers:\n"
        f"  openai: {{base_url: '{sim.base_url}/v1', api_key: test, max_retries: 0}}\n"
        f"ledger: {{path: '{ledger}', flush_interval_s: 5}}\n",
        encoding="utf-8",
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELIOS_LEDGER__")}
    env["HELIOS_DATA_DIR"] = str(tmp_path / "data")
    process = subprocess.Popen(
        [str(HELIOS), "--config", str(config), "serve", "--port", str(port), "--no-access-log"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    answered: dict[str, int] = {}
    try:
        wait_until_serving(port, process)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused")
        for number in range(6):
            messages = [{"role": "user", "content": f"Question number {number}?"}]
            if number % 2:
                with client.chat.completions.with_streaming_response.create(
                    model="openai:gpt-5.4-mini", messages=messages, stream=True
                ) as streamed:
                    assert "data: [DONE]" in list(streamed.iter_lines())
                    answered[streamed.headers["x-request-id"]] = 200
            else:
                raw = client.chat.completions.with_raw_response.create(
                    model="openai:gpt-5.4-mini", messages=messages
                )
                assert raw.parse().choices[0].message.content
                answered[raw.headers["x-request-id"]] = raw.status_code
        process.send_signal(signal.SIGKILL)  # no shutdown, no final flush
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL

    recorded = gateway_events(ledger)
    assert {task: recorded.get(task) for task in answered} == answered
    for task_id in answered:
        assert "persona_llm_run" in engine_event_types(ledger, task_id)
