"""A ``helios run`` killed with SIGKILL: its task is running, then abandoned, and counts.

One run completes and returns its result; a second, against a slow simulator, is killed
once its start is durable in the ledger. The ledger keeps every event of the returned
result, ``ledger summary`` and ``helios monitor`` count the killed task as running within
``ledger.abandoned_after_s`` and as abandoned (a failure) after it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from helios.sim import LatencyProfile, SimServer
from tests.cli.conftest import RunCli

GOAL = "Should a five-person startup adopt microservices?"
SIM_MODEL = ("--model", "openai:gpt-5.4-mini")
HELIOS = Path(sys.executable).with_name("helios")


def write_config(directory: Path, base_url: str, ledger: Path) -> None:
    (directory / "helios.yaml").write_text(
        "providers:\n"
        f"  openai: {{base_url: '{base_url}/v1', api_key: test, max_retries: 0}}\n"
        f"ledger: {{path: '{ledger}'}}\n"
        "cache: {enabled: false}\n",
        encoding="utf-8",
    )


def started_tasks(ledger: Path) -> list[tuple[str, float]]:
    if not ledger.exists():
        return []
    with sqlite3.connect(ledger) as connection:
        try:
            rows = connection.execute(
                "SELECT task_id, timestamp FROM events WHERE type = 'task_started' ORDER BY id"
            ).fetchall()
        except sqlite3.OperationalError:  # the tables are not there yet
            rows = []
    connection.close()
    return [(task_id, float(stamp)) for task_id, stamp in rows]


def stored_types(ledger: Path, task_id: str) -> Counter[str]:
    with sqlite3.connect(ledger) as connection:
        rows = connection.execute("SELECT type FROM events WHERE task_id = ?", (task_id,))
        types = Counter(kind for (kind,) in rows)
    connection.close()
    return types


def test_a_killed_run_is_abandoned_and_counts_as_a_failure(
    run_cli: RunCli,
    sim: SimServer,
    make_sim: Callable[..., SimServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELIOS_LEDGER__")}

    # 1. a run that completes: its result is returned, so its events must all be kept
    write_config(tmp_path, sim.base_url, ledger)
    done = subprocess.run(
        [str(HELIOS), "run", GOAL, *SIM_MODEL, "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    returned = Counter(event["type"] for event in result["events"])
    assert returned["task_finished"] == 1

    # 2. a run killed mid-task, once its start is durable
    slow = make_sim(latency=LatencyProfile(tokens_per_s=4), reply_tokens=400)
    write_config(tmp_path, slow.base_url, ledger)
    process = subprocess.Popen(
        [str(HELIOS), "run", GOAL, *SIM_MODEL, "--no-stream"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while len(started_tasks(ledger)) < 2:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the second run never recorded its start"
            time.sleep(0.05)
        process.kill()  # SIGKILL: no cleanup, no task_finished
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)  # reaps it and closes the pipe
    assert process.returncode == -9
    (_, first_start), (killed, killed_start) = started_tasks(ledger)

    # nothing of the returned result was lost
    assert stored_types(ledger, result["task_id"]) == returned
    assert stored_types(ledger, killed)["task_finished"] == 0

    # 3. within the timeout the killed task is running; past it, abandoned
    monkeypatch.setenv("HELIOS_LEDGER__ABANDONED_AFTER_S", "3600")
    summary = json.loads(run_cli("ledger", "summary", "--json").stdout)
    assert (summary["tasks"], summary["succeeded"], summary["running"]) == (2, 1, 1)
    assert (summary["abandoned"], summary["success_rate"]) == (0, 1.0)

    timeout_s = 1.0
    while time.time() <= killed_start + timeout_s:
        time.sleep(0.1)
    monkeypatch.setenv("HELIOS_LEDGER__ABANDONED_AFTER_S", str(timeout_s))
    summary = json.loads(run_cli("ledger", "summary", "--json").stdout)
    assert (summary["tasks"], summary["finished"], summary["succeeded"]) == (2, 1, 1)
    assert (summary["abandoned"], summary["running"], summary["success_rate"]) == (1, 0, 0.5)
    text = run_cli("ledger", "summary").stdout
    assert "1/2 succeeded (50.0%) · 1 abandoned" in text
    last = json.loads(run_cli("ledger", "last", "--json").stdout)
    assert (last["task_id"], last["abandoned"], last["success"]) == (killed, True, None)

    # the monitor's error rate counts the crash (and the rollback rule would react)
    report = json.loads(run_cli("monitor", "--once", "--json", "--no-rollback").stdout)
    assert report["metrics"]["error_rate"] == {"value": 0.5, "samples": 2}
    assert first_start < killed_start
