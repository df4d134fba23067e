"""A worker SIGKILLed mid-synthesis: its task finishes, on the restarted worker or on another
one, without repeating (or re-billing) the persona calls that had finished, and ends once.

Real processes on a real DBOS system database: the SQLite file of the embedded default, and
PostgreSQL (a schema of the test's own) as a fleet would use it. The simulator paces replies
at 40 tokens a second, so each persona call takes about a second: time to kill mid-call.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from helios.sim import SimServer
from helios.sim.config import LatencyProfile

from .fleet_helpers import (
    Fleet,
    calls_by_stage,
    free_port,
    kill,
    ledger_events,
    submit,
    unique_schema,
    wait_for_stage,
    wait_for_status,
    write_config,
)

ONE_CALL_EACH = {"thesis": 1, "antithesis": 1, "synthesis": 1}
"""With documents: the simulator's replies cite nothing, so the gate's citation check fails
the synthesis before any judge is asked (and max_passes is 1)."""


def _postgres_url() -> str:
    url = os.environ.get("HELIOS_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("HELIOS_REQUIRE_SERVICES"):
            pytest.fail("HELIOS_TEST_POSTGRES_URL is not set and services are required")
        pytest.skip("set HELIOS_TEST_POSTGRES_URL to run the PostgreSQL task tests")
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def fleet(
    request: pytest.FixtureRequest, tmp_path: Path, make_sim: Callable[..., SimServer]
) -> Iterator[tuple[Fleet, Path]]:
    sim = make_sim(latency=LatencyProfile(ttft_s=0.05, tokens_per_s=40), reply_tokens=40)
    ledger = tmp_path / "ledger.sqlite3"
    schema = "dbos"
    if request.param == "sqlite":
        database = f"sqlite:///{tmp_path / 'tasks.sqlite'}"
    else:
        database, schema = _postgres_url(), unique_schema()
    config = write_config(
        tmp_path / "helios.yaml",
        sim_url=sim.base_url,
        ledger=ledger,
        database_url=database,
        schema=schema,
    )
    fleet = Fleet(config=config, data_dir=tmp_path / "data")
    yield fleet, ledger
    fleet.close()
    if request.param == "postgres":
        with psycopg.connect(database, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_a_worker_killed_mid_synthesis_finishes_its_task_when_it_restarts(
    fleet: tuple[Fleet, Path],
) -> None:
    processes, ledger = fleet
    port = free_port()
    server = processes.serve(port, executor_id="node-a")
    task_id = submit(port, documents=[{"name": "notes.md", "text": "Deploys matter.\n" * 20}])
    wait_for_stage(port, task_id, "synthesis")
    kill(server)
    before = calls_by_stage(ledger_events(ledger, task_id))
    assert before == {"thesis": 1, "antithesis": 1}  # the synthesis died unfinished

    processes.serve(port, executor_id="node-a")
    task = wait_for_status(port, task_id, "succeeded")
    records = ledger_events(ledger, task_id)
    assert calls_by_stage(records) == ONE_CALL_EACH
    types = [record["type"] for record in records]
    assert types.count("task_finished") == 1 and types.count("task_started") == 1
    assert types.count("task_queued") == 1 and "task_recovered" in types
    assert [stage["stage"] for stage in task["stages"]] == list(ONE_CALL_EACH)


def test_another_worker_takes_over_the_tasks_of_one_that_died(fleet: tuple[Fleet, Path]) -> None:
    processes, ledger = fleet
    port = free_port()
    processes.serve(port, executor_id="api", worker=False)
    doomed = processes.worker("worker-a")
    task_id = submit(port)
    wait_for_stage(port, task_id, "synthesis")
    processes.worker("worker-b")
    kill(doomed)

    task = wait_for_status(port, task_id, "succeeded")
    assert task["executor"] == "worker-b"
    records = ledger_events(ledger, task_id)
    # no documents, so no citation to check: the judge is asked
    assert calls_by_stage(records) == {**ONE_CALL_EACH, "judge": 1}
    types = [record["type"] for record in records]
    assert types.count("task_finished") == 1
    takeovers = [r for r in records if r["type"] == "task_recovered" and r["previous_executor_id"]]
    assert [(r["previous_executor_id"], r["executor_id"]) for r in takeovers] == [
        ("worker-a", "worker-b")
    ]


def test_tasks_queued_before_a_crash_all_run_after_the_restart(fleet: tuple[Fleet, Path]) -> None:
    processes, ledger = fleet
    port = free_port()
    api_only = processes.serve(port, executor_id="node-a", worker=False)
    queued = [submit(port, kind="ask", goal=f"Question {n}?") for n in range(3)]
    kill(api_only)  # nobody has run them yet

    processes.serve(port, executor_id="node-a")
    for task_id in queued:
        task = wait_for_status(port, task_id, "succeeded")
        assert task["result"]["answer"]
        types = [record["type"] for record in ledger_events(ledger, task_id)]
        assert types.count("task_queued") == 1 and types.count("task_finished") == 1


def test_a_worker_stopped_on_purpose_hands_its_task_over_at_once(
    fleet: tuple[Fleet, Path],
) -> None:
    processes, ledger = fleet
    port = free_port()
    processes.serve(port, executor_id="api", worker=False)
    leaving = processes.worker("worker-a")
    task_id = submit(port)
    wait_for_stage(port, task_id, "antithesis")
    processes.worker("worker-b")
    leaving.send_signal(signal.SIGTERM)
    assert leaving.wait(timeout=30) == 0

    task = wait_for_status(port, task_id, "succeeded")
    assert task["executor"] == "worker-b"
    records = ledger_events(ledger, task_id)
    types = [record["type"] for record in records]
    assert types.count("task_finished") == 1 and "error" not in types
    assert calls_by_stage(records)["thesis"] == 1
