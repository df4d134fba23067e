"""``helios flags``, ``helios monitor`` and ``helios serve`` against a SQLite ledger."""

from __future__ import annotations

import asyncio
import getpass
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import httpx2
import pytest

from helios.ledger.events import Event, FlagChanged, TaskFinished, TaskStarted
from helios.ledger.sqlite import SQLiteLedgerStore
from tests.cli.conftest import RunCli, default_sigint

T = TypeVar("T")
HELIOS = Path(sys.executable).with_name("helios")


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    """A helios.yaml in the working directory pointing at a fresh SQLite ledger."""
    path = tmp_path / "ledger.sqlite3"
    (tmp_path / "helios.yaml").write_text(f"ledger:\n  path: {path}\n", encoding="utf-8")
    return path


def seed(path: Path, *, tasks: int, failures: int) -> None:
    now = time.time()
    events: list[Event] = []
    for n in range(tasks):
        events += [
            TaskStarted(task_id=f"t{n}", goal="g", timestamp=now - 60),
            TaskFinished(
                task_id=f"t{n}", success=n >= failures, duration_s=2.0, timestamp=now - 30
            ),
        ]
    asyncio.run(_with_store(path, lambda store: store.append(events)))


def stored(path: Path) -> tuple[dict[str, object], list[FlagChanged]]:
    async def read(store: SQLiteLedgerStore) -> tuple[dict[str, object], list[FlagChanged]]:
        overrides = dict(await store.flag_overrides())
        changes = [e for e in await store.query() if isinstance(e, FlagChanged)]
        return overrides, changes

    return asyncio.run(_with_store(path, read))


async def _with_store(path: Path, operation: Callable[[SQLiteLedgerStore], Awaitable[T]]) -> T:
    store = SQLiteLedgerStore(path)
    try:
        return await operation(store)
    finally:
        await store.aclose()


def test_flags_list_shows_every_flag(run_cli: RunCli, ledger: Path) -> None:
    result = run_cli("flags", "list")
    assert result.exit_code == 0, result.stderr
    for flag in ("async_thesis", "response_cache", "thesis_streaming", "max_passes"):
        assert flag in result.stdout
    assert "orchestration.async_thesis.enabled" in result.stdout
    rows = {row["flag"]: row for row in json.loads(run_cli("flags", "list", "--json").stdout)}
    assert rows["async_thesis"] == {
        "flag": "async_thesis",
        "setting": "orchestration.async_thesis.enabled",
        "settings_value": True,
        "override": None,
        "effective": True,
        "override_set_at": None,
        "override_by": None,
    }
    # Unset in the settings: the shipped persona decides.
    assert rows["thesis_streaming"]["settings_value"] is None
    assert rows["thesis_streaming"]["effective"] is True


def test_flags_set_and_unset(run_cli: RunCli, ledger: Path) -> None:
    result = run_cli("flags", "set", "async_thesis", "off", "--reason", "too many fallbacks")
    assert result.exit_code == 0, result.stderr
    assert "async_thesis: (settings) -> false" in result.stdout
    rows = {row["flag"]: row for row in json.loads(run_cli("flags", "list", "--json").stdout)}
    assert rows["async_thesis"]["override"] is False
    assert rows["async_thesis"]["effective"] is False
    assert rows["async_thesis"]["settings_value"] is True
    # when and by whom, in ISO 8601 with the offset
    set_at = datetime.fromisoformat(rows["async_thesis"]["override_set_at"])
    assert set_at.utcoffset() is not None and abs(set_at.timestamp() - time.time()) < 300
    assert rows["async_thesis"]["override_by"] == getpass.getuser()
    listed = run_cli("flags", "list").stdout
    assert f"{rows['async_thesis']['override_set_at']} by {getpass.getuser()}" in listed

    assert run_cli("flags", "set", "max_passes", "3", "-r", "quality").exit_code == 0
    result = run_cli("flags", "unset", "async_thesis", "--reason", "fixed")
    assert result.exit_code == 0, result.stderr
    assert "async_thesis: false -> (settings)" in result.stdout

    overrides, changes = stored(ledger)
    assert overrides == {"max_passes": 3}
    assert [(c.flag, c.old, c.new, c.reason) for c in changes] == [
        ("async_thesis", None, False, "too many fallbacks"),
        ("max_passes", None, 3, "quality"),
        ("async_thesis", False, None, "fixed"),
    ]
    assert {c.actor for c in changes} == {getpass.getuser()}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("set", "warp_drive", "on"), "error: unknown flag 'warp_drive'"),
        (("set", "async_thesis", "maybe"), "error: flag async_thesis: expected true or false"),
        (("set", "max_passes", "0"), "error: flag max_passes: Input should be greater than"),
        (("unset", "warp_drive"), "error: unknown flag 'warp_drive'"),
    ],
)
def test_bad_flags_are_one_line_errors(
    run_cli: RunCli, ledger: Path, args: tuple[str, ...], message: str
) -> None:
    result = run_cli("flags", *args, "--reason", "r")
    assert result.exit_code == 2
    assert result.stderr.startswith(message)
    assert len(result.stderr.strip().splitlines()) == 1
    assert not ledger.exists()  # refused before the ledger was touched


def test_a_reason_is_required(run_cli: RunCli, ledger: Path) -> None:
    result = run_cli("flags", "set", "async_thesis", "off")
    assert result.exit_code == 2
    assert "--reason" in result.stderr


def test_monitor_once_json_rolls_back(run_cli: RunCli, ledger: Path) -> None:
    seed(ledger, tasks=30, failures=9)
    result = run_cli("monitor", "--once", "--json", "--no-alert")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["tasks"] == 30
    assert report["metrics"]["error_rate"] == {"value": 0.3, "samples": 30}
    error_rule = next(rule for rule in report["rules"] if rule["metric"] == "error_rate")
    assert error_rule["action"] == "rolled_back"
    assert error_rule["reason"] == "error_rate 0.30 > 0.05 over 30 tasks in the last 1 h"
    overrides, changes = stored(ledger)
    assert overrides == {"async_thesis": False}
    assert changes[0].actor == "monitor"

    # A second run finds the flag already rolled back: no new flag_changed.
    again = json.loads(run_cli("monitor", "--once", "--json", "--no-alert").stdout)
    assert next(r for r in again["rules"] if r["metric"] == "error_rate")["action"] == (
        "already_rolled_back"
    )
    assert len(stored(ledger)[1]) == 1


def test_monitor_no_rollback_and_table(run_cli: RunCli, ledger: Path) -> None:
    seed(ledger, tasks=30, failures=9)
    result = run_cli("monitor", "--once", "--no-rollback", "--hours", "2")
    assert result.exit_code == 0, result.stderr
    assert "30 tasks in the last 2 h" in result.stdout
    assert "error_rate" in result.stdout
    assert (
        "firing: async_thesis_errors: error_rate 0.30 > 0.05 over 30 tasks in the last 2 h"
        " (alerted)"
    ) in result.stdout
    assert stored(ledger)[0] == {}


def test_monitor_rules_from_the_settings(run_cli: RunCli, ledger: Path) -> None:
    """A user rule that only alerts, beside the default rules, in the text report."""
    config = ledger.parent / "helios.yaml"
    config.write_text(
        config.read_text(encoding="utf-8") + "monitor:\n"
        "  rules:\n"
        "    - {name: slow_tasks, metric: p95_latency_s, threshold: 1, actions: [alert]}\n",
        encoding="utf-8",
    )
    seed(ledger, tasks=30, failures=0)  # every task took 2 s
    result = run_cli("monitor", "--once", "--no-alert")
    assert result.exit_code == 0, result.stderr
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if "│" in line}
    assert "rollback async_thesis=false" in rows["async_thesis_errors"]
    assert "p95_latency_s > 1, ≥ 20 tasks" in rows["slow_tasks"]
    assert "firing (its actions are off)" in rows["slow_tasks"]
    assert stored(ledger) == ({}, [])  # an alert-only rule never touches a flag
    report = json.loads(run_cli("monitor", "--once", "--json").stdout)
    assert [rule["name"] for rule in report["rules"]] == [
        "async_thesis_fallbacks",
        "async_thesis_errors",
        "slow_tasks",
    ]
    assert report["rules"][2]["action"] == "alerted"
    assert stored(ledger) == ({}, [])


def test_monitor_refuses_a_bad_rule_naming_the_key(run_cli: RunCli, ledger: Path) -> None:
    config = ledger.parent / "helios.yaml"
    config.write_text(
        config.read_text(encoding="utf-8")
        + "monitor:\n  rules:\n    - {metric: error_rate, threshold: 10}\n",
        encoding="utf-8",
    )
    result = run_cli("monitor", "--once")
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "error: config file helios.yaml: monitor.rules.0: threshold of error_rate is a rate"
    ), result.stderr


def test_monitor_one_failure_in_two_tasks_changes_nothing(run_cli: RunCli, ledger: Path) -> None:
    seed(ledger, tasks=2, failures=1)
    report = json.loads(run_cli("monitor", "--once", "--json").stdout)
    assert all(not rule["fired"] for rule in report["rules"])
    assert stored(ledger) == ({}, [])


@pytest.mark.parametrize(
    ("args", "message"),
    [(("--hours", "0"), "--hours"), (("--interval", "-1"), "--interval")],
)
def test_monitor_bad_options(
    run_cli: RunCli, ledger: Path, args: tuple[str, ...], message: str
) -> None:
    result = run_cli("monitor", "--once", *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: command line: {message}: Input should be greater")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, *, until: str) -> str:
    deadline = time.monotonic() + 30
    while True:
        try:
            text = httpx2.get(url, timeout=2).text
            if until in text:
                return text
        except httpx2.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} never served {until!r}"
        time.sleep(0.1)


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=20)
    return process.returncode, stderr


def test_monitor_serves_metrics_and_stops_on_ctrl_c(tmp_path: Path, ledger: Path) -> None:
    seed(ledger, tasks=30, failures=9)
    port = free_port()
    process = subprocess.Popen(
        [str(HELIOS), "monitor", "--interval", "0.2", "--json", "--metrics-port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    try:
        text = wait_for(f"http://127.0.0.1:{port}/metrics", until="helios_health_rule_firing{")
    finally:
        code, stderr = stop(process)
    assert 'helios_health_value{metric="error_rate"} 0.3' in text
    assert 'helios_health_rule_firing{metric="error_rate",rule="async_thesis_errors"} 1.0' in text
    assert code == 130, stderr
    assert "Traceback" not in stderr


def test_serve_answers_health_and_metrics(tmp_path: Path, ledger: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [str(HELIOS), "serve", "--port", str(port), "--log-level", "warning"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    try:
        health = json.loads(wait_for(f"http://127.0.0.1:{port}/health", until="status"))
        metrics = wait_for(f"http://127.0.0.1:{port}/metrics", until="# TYPE")
    finally:
        code, stderr = stop(process)
    assert health["status"] == "ok"
    assert health["ledger"]["backend"] == "sqlite"
    assert "helios_tasks_started_total" in metrics
    assert code in (0, 130), stderr
    assert "Traceback" not in stderr
