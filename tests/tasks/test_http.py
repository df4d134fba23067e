"""The tasks API of a real ``helios serve`` (SQLite, the simulator behind it): its answers,
its errors naming the field, and an event stream resumed with ``Last-Event-ID``."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from helios.sim import SimServer

from .fleet_helpers import (
    HELIOS,
    TASKS,
    Fleet,
    api,
    events,
    free_port,
    submit,
    write_config,
)


def sqlite_fleet(folder: Path, sim: SimServer) -> Fleet:
    """Processes sharing one configuration in ``folder``: SQLite tasks, the simulator."""
    config = write_config(
        folder / "helios.yaml",
        sim_url=sim.base_url,
        ledger=folder / "ledger.sqlite3",
        database_url=f"sqlite:///{folder / 'tasks.sqlite'}",
    )
    return Fleet(config=config, data_dir=folder / "data")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, _shared_sim: SimServer) -> Iterator[int]:
    fleet = sqlite_fleet(tmp_path_factory.mktemp("tasks-http"), _shared_sim)
    port = free_port()
    fleet.serve(port, executor_id="http-tests")
    yield port
    fleet.close()


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"goal": ""}, ["body", "goal"]),
        ({"goal": "g", "priority": 0}, ["body", "priority"]),
        ({"goal": "g", "colour": "red"}, ["body", "colour"]),
        ({"goal": "g", "documents": [{"name": "a.md"}]}, ["body", "documents", 0, "text"]),
        ({"goal": "g", "flags": {"ledger.enabled": False}}, ["body", "flags", "ledger", "enabled"]),
        ({"goal": "g", "paths": ["/etc/hosts"]}, ["body", "paths"]),
    ],
)
def test_a_malformed_task_is_a_422_naming_the_field(
    server: int, body: dict[str, object], where: list[object]
) -> None:
    with api(server) as client:
        response = client.post(TASKS, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == where


def test_unknown_tasks_are_404_and_finished_ones_cannot_be_cancelled(server: int) -> None:
    with api(server) as client:
        assert client.get(f"{TASKS}/nope").status_code == 404
        assert client.delete(f"{TASKS}/nope").status_code == 404
    task_id = submit(server, kind="ask", goal="Capital of Japan?")
    list(events(server, task_id))  # until it ends
    with api(server) as client:
        refused = client.delete(f"{TASKS}/{task_id}")
        assert refused.status_code == 409 and "already succeeded" in refused.text
        listed = client.get(TASKS, params={"status": "succeeded"}).json()["tasks"]
    assert task_id in [task["id"] for task in listed]


def test_an_idempotency_key_answers_the_first_task(server: int) -> None:
    body = {"kind": "ask", "goal": "Capital of France?", "idempotency_key": "order-1"}
    with api(server) as client:
        first = client.post(TASKS, json=body)
        again = client.post(TASKS, json=body)
        other = client.post(TASKS, json={**body, "goal": "Capital of Peru?"})
    assert (first.status_code, again.status_code, other.status_code) == (202, 200, 409)
    assert again.json()["id"] == first.json()["id"] and again.json()["existing"]


def test_a_follower_that_reconnects_with_last_event_id_misses_nothing(server: int) -> None:
    task_id = submit(server)
    whole = [(e.id, e.event, e.data) for e in events(server, task_id)]
    assert whole[-1][1] == "end" and json.loads(whole[-1][2])["status"] == "succeeded"
    assert [kind for _, kind, _ in whole].count("result") == 1
    cut = len(whole) // 2
    resumed = [(e.id, e.event, e.data) for e in events(server, task_id, last_id=whole[cut][0])]
    assert resumed == whole[cut + 1 :]


def test_with_keys_a_tenant_sees_only_its_own_tasks(tmp_path: Path, _shared_sim: SimServer) -> None:
    fleet = sqlite_fleet(tmp_path, _shared_sim)
    keys = {}
    for tenant, admin in (("acme", False), ("globex", False), ("ops", True)):
        args = [str(HELIOS), "--config", str(fleet.config), "keys", "create", "--tenant", tenant]
        created = subprocess.run(
            args + (["--admin"] if admin else []),
            env={**os.environ, "HELIOS_DATA_DIR": str(fleet.data_dir)},
            capture_output=True,
            text=True,
            check=True,
        )
        keys[tenant] = created.stdout.strip().splitlines()[0]
    port = free_port()
    fleet.serve(port, executor_id="keyed")
    try:

        def client(tenant: str | None) -> Any:
            headers = {"Authorization": f"Bearer {keys[tenant]}"} if tenant else {}
            return httpx2.Client(base_url=f"http://127.0.0.1:{port}", headers=headers)

        with client(None) as anonymous:
            assert anonymous.post(TASKS, json={"goal": "g"}).status_code == 401
        with client("acme") as acme:
            answer = acme.post(TASKS, json={"kind": "ask", "goal": "Capital of Japan?"})
            assert answer.status_code == 202
            task_id = answer.json()["id"]
            assert acme.get(f"{TASKS}/{task_id}").json()["tenant"] == "acme"
        with client("globex") as globex:
            assert globex.get(f"{TASKS}/{task_id}").status_code == 404
            assert globex.delete(f"{TASKS}/{task_id}").status_code == 404
            assert globex.get(f"{TASKS}/{task_id}/events").status_code == 404
            assert globex.get(TASKS).json()["tasks"] == []
        with client("ops") as admin:
            assert admin.get(f"{TASKS}/{task_id}").status_code == 200
    finally:
        fleet.close()


def test_documents_may_be_uploaded_as_files(server: int) -> None:
    task = json.dumps({"goal": "Should we split the monolith?", "priority": 2})
    files = [
        ("documents", ("team.md", b"Five engineers.\n" * 10, "text/markdown")),
        ("documents", ("ops.txt", b"One deploy a day.\n" * 10, "text/plain")),
    ]
    with api(server) as client:
        accepted = client.post(f"{TASKS}/upload", data={"task": task}, files=files)
        assert accepted.status_code == 202, accepted.text
        task_id = accepted.json()["id"]
        evidence = [json.loads(e.data) for e in events(server, task_id) if e.event == "evidence"]
        assert evidence[0]["documents"] == 2
        binary = client.post(
            f"{TASKS}/upload",
            data={"task": task},
            files=[("documents", ("x.bin", b"\xff\xfe", "x"))],
        )
        assert binary.status_code == 422
        assert binary.json()["detail"][0]["loc"] == ["body", "documents", "0"]
        bad_task = client.post(f"{TASKS}/upload", data={"task": '{"goal": 3}'})
        assert bad_task.status_code == 422
        assert bad_task.json()["detail"][0]["loc"] == ["body", "task", "goal"]
