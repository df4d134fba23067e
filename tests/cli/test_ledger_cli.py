"""``helios ledger``: run in-process through the real entry point against a SQLite ledger in
the test's temporary directory."""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from helios.cli.ledger import parse_since
from helios.errors import InputError
from helios.ledger.codec import encode_event
from helios.ledger.events import Event, PersonaLLMRun, TaskStarted
from helios.ledger.sqlite import SQLiteLedgerStore
from tests.analysis.test_analysis import EPOCH, PNG_MAGIC, arm_tasks, build_task
from tests.cli.conftest import RunCli

OFFSETS = [-2.0, -1.0, -0.5, 0.0, 0.0, 0.5, 1.0, 2.0, -1.5, 1.5]
EMPTY = "the ledger is empty: run `helios run` first or `helios ledger import`"


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ledger.sqlite3"
    monkeypatch.setenv("HELIOS_LEDGER__PATH", str(path))
    return path


def write_jsonl(path: Path, events: Sequence[Event], *, extra_lines: Sequence[str] = ()) -> Path:
    lines = [event.model_dump_json() for event in events]
    path.write_text("\n".join([*lines, *extra_lines]) + "\n", encoding="utf-8")
    return path


def two_arms(now: float | None = None) -> list[Event]:
    t0 = time.time() - 7200 if now is None else now
    return arm_tasks("sync", [10 + d for d in OFFSETS], {"async_thesis": False}, t0=t0) + (
        arm_tasks("async", [8 + 2 * d for d in OFFSETS], {"async_thesis": True}, t0=t0 + 1000)
    )


@pytest.fixture
def filled(run_cli: RunCli, ledger: Path, tmp_path: Path) -> Path:
    result = run_cli("ledger", "import", str(write_jsonl(tmp_path / "in.jsonl", two_arms())))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("imported 120 events")
    return ledger


@pytest.mark.parametrize("command", ["summary", "last", "compare"])
def test_an_empty_ledger_says_so(run_cli: RunCli, ledger: Path, command: str) -> None:
    args = ["ledger", command, *(["--by", "model"] if command == "compare" else [])]
    result = run_cli(*args)
    assert (result.exit_code, result.stdout.strip()) == (0, EMPTY)
    as_json = run_cli(*args, "--json")
    document = json.loads(as_json.stdout)
    assert (as_json.exit_code, document["tasks"], document["message"]) == (0, 0, EMPTY)


def test_summary(run_cli: RunCli, filled: Path, tmp_path: Path) -> None:
    result = run_cli("ledger", "summary", "--plot", "summary.png")
    assert result.exit_code == 0, result.stderr
    assert "20 tasks · 20/20 succeeded (100.0%)" in result.stdout
    assert "Latency per stage" in result.stdout
    assert "9.00 ± 2.24 s" in result.stdout  # total: both arms together
    assert "1.00 ± 0.00 s" in result.stdout and "500 ± 0 ms" in result.stdout
    assert (tmp_path / "summary.png").read_bytes().startswith(PNG_MAGIC)
    document = json.loads(run_cli("ledger", "summary", "--json").stdout)
    assert document["tasks"] == 20
    assert document["latency_s"]["total"]["mean"] == pytest.approx(9.0)
    assert document["latency_s"]["thesis"]["n"] == 20


def test_summary_selection(run_cli: RunCli, filled: Path) -> None:
    last = json.loads(run_cli("ledger", "summary", "--last", "3", "--json").stdout)
    assert last["tasks"] == 3
    assert last["latency_s"]["total"]["mean"] == pytest.approx(8 + 2 * sum(OFFSETS[-3:]) / 3)
    recent = run_cli("ledger", "summary", "--since", "104m", "--json")  # the async arm only
    assert json.loads(recent.stdout)["tasks"] == 10
    nothing = run_cli("ledger", "summary", "--since", "1m")
    assert nothing.exit_code == 0
    assert nothing.stdout.strip() == "no task started since 1m (the ledger holds 120 events)"
    dated = run_cli("ledger", "summary", "--since", "2000-01-01", "--json")
    assert json.loads(dated.stdout)["tasks"] == 20


def test_bad_since_names_the_value(run_cli: RunCli, filled: Path) -> None:
    result = run_cli("ledger", "summary", "--since", "yesterday")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --since 'yesterday': expected a duration")


def test_parse_since() -> None:
    assert parse_since("90m", now=10_000.0) == 10_000.0 - 5400
    assert parse_since("24h", now=100_000.0) == 100_000.0 - 86400
    assert parse_since("7d", now=1e6) == 1e6 - 7 * 86400
    assert parse_since("2025-01-31T00:00:00+00:00") == 1738281600.0
    assert parse_since(None) is None
    with pytest.raises(InputError, match="--since '-3h'"):
        parse_since("-3h")


def test_compare(run_cli: RunCli, filled: Path, tmp_path: Path) -> None:
    result = run_cli("ledger", "compare", "--by", "flag:async_thesis", "--plot", "ab.png")
    assert result.exit_code == 0, result.stderr
    assert "baseline: false" in result.stdout
    assert "true vs false: true is 20.0% faster than false (p=" in result.stdout
    assert "significant" in result.stdout
    assert "nan" not in result.stdout.lower()
    assert (tmp_path / "ab.png").read_bytes().startswith(PNG_MAGIC)
    document = json.loads(
        run_cli("ledger", "compare", "--by", "flag:async_thesis", "--json").stdout
    )
    total = next(d for d in document["differences"] if d["metric"] == "total")
    assert total["improvement_pct"] == pytest.approx(20.0)
    assert total["variance_change_pct"] == pytest.approx(300.0)
    low, high = total["ci95_s"]
    assert low < -2.0 < high
    flipped = run_cli("ledger", "compare", "--by", "flag:async_thesis", "--baseline", "true")
    assert "false is 25.0% slower than true" in flipped.stdout


def test_compare_with_one_arm(run_cli: RunCli, filled: Path) -> None:
    result = run_cli("ledger", "compare", "--by", "flag:async_thesis", "--last", "4")
    assert result.exit_code == 0
    assert "only one arm (true) for flag:async_thesis: nothing to compare" in result.stdout


def test_compare_with_few_tasks_will_not_conclude(
    run_cli: RunCli, ledger: Path, tmp_path: Path
) -> None:
    events = arm_tasks("a", [10, 11, 12], {"async_thesis": False}) + arm_tasks(
        "b", [1, 2, 3], {"async_thesis": True}, t0=EPOCH + 5000.0
    )
    run_cli("ledger", "import", str(write_jsonl(tmp_path / "few.jsonl", events)))
    result = run_cli("ledger", "compare", "--by", "flag:async_thesis")
    assert result.exit_code == 0
    assert (
        "true vs false: too few tasks to conclude (n=3 vs 3; at least 5 per arm needed)"
        in result.stdout
    )


def test_unknown_by_lists_the_choices(run_cli: RunCli, filled: Path) -> None:
    result = run_cli("ledger", "compare", "--by", "colour")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: unknown --by 'colour': choose one of flag:async_thesis, "
        "model, provider, persona, streaming, kind, documents"
    )
    bad_baseline = run_cli("ledger", "compare", "--by", "flag:async_thesis", "--baseline", "x")
    assert bad_baseline.exit_code == 2
    assert "no such arm for flag:async_thesis (arms: false, true)" in bad_baseline.stderr


def test_last(run_cli: RunCli, filled: Path) -> None:
    result = run_cli("ledger", "last")
    assert result.exit_code == 0, result.stderr
    assert "task async9" in result.stdout
    assert "flags: async_thesis=true" in result.stdout
    assert "llamacpp:local" in result.stdout and "█" in result.stdout
    assert "total 11.00 s · succeeded" in result.stdout
    document = json.loads(run_cli("ledger", "last", "--json").stdout)
    assert document["task_id"] == "async9"
    assert [s["stage"] for s in document["stages"]] == [
        "evidence",
        "thesis",
        "antithesis",
        "synthesis",
    ]
    assert document["stages"][1]["start_s"] == pytest.approx(0.5)


def test_an_import_with_a_bad_line_imports_nothing(
    run_cli: RunCli, ledger: Path, tmp_path: Path
) -> None:
    millis = '{"event": "task_started", "task_id": "x", "timestamp": 1748779200000}'
    path = write_jsonl(
        tmp_path / "mixed.jsonl", build_task("a", EPOCH + 1000.0), extra_lines=["{oops", millis]
    )
    result = run_cli("ledger", "import", str(path))
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr
    assert f"{path}: nothing imported: 2 lines not a valid event" in result.stderr
    assert f"{path}:7: not JSON" in result.stderr
    assert f"{path}:8: implausible task_started event: timestamp: 1.74878e+12" in result.stderr
    assert run_cli("ledger", "summary").stdout.strip() == EMPTY  # all or nothing


def test_import_of_nothing_valid_fails(run_cli: RunCli, ledger: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"type": "nope", "task_id": "a"}\n[1]\n', encoding="utf-8")
    result = run_cli("ledger", "import", str(path))
    assert result.exit_code == 2
    assert f"{path}:1: unknown event type 'nope'" in result.stderr
    assert f"{path}:2: not a JSON object" in result.stderr


def store_directly(path: Path, events: Sequence[Event]) -> None:
    """Write rows as an older Helios (or a hand-written INSERT) could: unchecked."""

    async def write() -> None:
        store = await SQLiteLedgerStore.open(path)  # creates the tables
        await store.aclose()

    asyncio.run(write())
    with sqlite3.connect(path) as connection:
        connection.executemany(
            "INSERT INTO events (task_id, type, timestamp, version, body) VALUES (?, ?, ?, ?, ?)",
            [(e.task_id, e.type, e.timestamp, e.version, encode_event(e)) for e in events],
        )
    connection.close()


def test_implausible_stored_events_are_skipped_with_a_warning(
    run_cli: RunCli, ledger: Path
) -> None:
    now = time.time()
    normal = build_task("normal", now - 600)
    future = [
        e.model_copy(update={"timestamp": 1e300 if isinstance(e, TaskStarted) else 1.7e12})
        for e in build_task("future", now - 300)
    ]
    costly = [
        e.model_copy(update={"cost_usd": math.nan, "duration_s": -1.0})
        if isinstance(e, PersonaLLMRun)
        else e
        for e in build_task("nan", now - 900)
    ]
    store_directly(ledger, [*normal, *future, *costly])
    for command in ("summary", "last"):
        result = run_cli("ledger", command)
        assert result.exit_code == 0, result.stderr
        assert "Traceback" not in result.stderr
    summary = run_cli("ledger", "summary", "--json")
    assert "skipped 9 ledger events with implausible values" in summary.stderr
    document = json.loads(summary.stdout)
    assert (document["tasks"], document["succeeded"]) == (2, 2)  # the future task is left out
    assert document["cost_usd"] == pytest.approx(0.03)  # normal's 3 calls; nan's were skipped
    # not the task stamped in the year 10^292: it is no recent task, so nothing is skipped
    # (the router's model health, reading the same ledger, warns on its own line)
    last = run_cli("ledger", "last", "--json")
    assert json.loads(last.stdout)["task_id"] == "normal"
    assert not [line for line in last.stderr.splitlines() if line.startswith("warning: skipped")]


def test_a_started_task_with_no_end_is_running_then_abandoned(
    run_cli: RunCli, ledger: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HELIOS_LEDGER__ABANDONED_AFTER_S", "600")
    now = time.time()
    done = build_task("done", now - 3600)
    crashed = build_task("crashed", now - 1800)[:-1]  # no task_finished: killed
    running = build_task("running", now - 60)[:-1]
    store_directly(ledger, [*done, *crashed, *running])
    document = json.loads(run_cli("ledger", "summary", "--json").stdout)
    assert (document["tasks"], document["finished"], document["succeeded"]) == (3, 1, 1)
    assert (document["abandoned"], document["running"]) == (1, 1)
    assert document["success_rate"] == 0.5
    text = run_cli("ledger", "summary").stdout
    assert "1/2 succeeded (50.0%) · 1 abandoned (no end within 10 min of the start)" in text
    assert "1 running" in text
    assert "running" in run_cli("ledger", "last").stdout
    monkeypatch.setenv("HELIOS_LEDGER__ABANDONED_AFTER_S", "30")
    later = json.loads(run_cli("ledger", "summary", "--json").stdout)
    assert (later["abandoned"], later["running"]) == (2, 0)
    assert json.loads(run_cli("ledger", "last", "--json").stdout)["abandoned"] is True


def test_import_of_a_missing_file(run_cli: RunCli, ledger: Path) -> None:
    result = run_cli("ledger", "import", "missing.jsonl")
    assert (result.exit_code, result.stderr.strip()) == (2, "error: missing.jsonl: no such file")


def test_export(run_cli: RunCli, filled: Path, tmp_path: Path) -> None:
    result = run_cli("ledger", "export", "--last", "2")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 12 and "exported 12 events" in result.stderr
    assert {json.loads(line)["task_id"] for line in lines} == {"async8", "async9"}
    to_file = run_cli("ledger", "export", "--output", "all.jsonl")
    assert to_file.stdout.strip() == "exported 120 events to all.jsonl"
    assert len((tmp_path / "all.jsonl").read_text().splitlines()) == 120
    unwritable = run_cli("ledger", "export", "--output", "no/such/dir.jsonl")
    assert unwritable.exit_code == 2
    assert unwritable.stderr.startswith("error: --output no/such/dir.jsonl: cannot write it")


def test_an_unwritable_plot_is_an_input_error(run_cli: RunCli, filled: Path) -> None:
    result = run_cli("ledger", "summary", "--plot", "no/such/dir/plot.png")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --plot no/such/dir/plot.png: cannot write it")


def test_an_unreachable_postgres_ledger_is_one_line(
    run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("psycopg", reason="the postgres extra is not installed")
    monkeypatch.setenv("HELIOS_LEDGER__BACKEND", "postgres")
    monkeypatch.setenv("HELIOS_LEDGER__POSTGRES_URL", "postgresql://helios:pw@127.0.0.1:1/test")
    result = run_cli("ledger", "summary")
    assert result.exit_code == 1
    # one error, last; the runtime's warnings on the way there (flags, model health) come
    # before it, one line each
    *warnings, error = result.stderr.strip().splitlines()
    assert error.startswith("error: cannot connect to the PostgreSQL ledger")
    assert all(line.startswith("warning: ") for line in warnings)
    assert "pw" not in result.stderr


# -- acceptance: the reference design's JSONL ----------------------------------------------
def reference_lines(prefix: str, totals: Sequence[float], async_thesis: bool) -> list[str]:
    lines = []
    for i, total in enumerate(totals):
        task = f"{prefix}-{i}"
        stamp = f"2025-03-0{1 + i % 9}T10:{i:02d}:00"
        lines += [
            {"event": "task_started", "task_id": task, "timestamp": stamp,
             "goal": "Should we split the monolith?", "async_thesis": async_thesis,
             "parallel_prep": False},
            {"event": "persona_llm_run", "task_id": task, "timestamp": stamp,
             "persona": "thesis", "model": "claude-sonnet", "streaming": True,
             "ttft_sec": 0.92, "duration_sec": 3.88, "tokens_in": 812, "tokens_out": 240},
            {"event": "persona_llm_run", "task_id": task, "timestamp": stamp,
             "persona": "antithesis", "model": "claude-sonnet", "streaming": True,
             "ttft_sec": 0.81, "duration_sec": 2.5, "tokens_in": 900, "tokens_out": 200},
            {"event": "task_finished", "task_id": task, "timestamp": stamp,
             "duration_sec": total, "status": "ok"},
        ]  # fmt: skip
    return [json.dumps(line) for line in lines]


def test_reference_design_jsonl_compares_by_the_async_flag(
    run_cli: RunCli, ledger: Path, tmp_path: Path
) -> None:
    sequential = [12.0, 13.0, 14.0, 12.5, 13.5, 13.0]  # mean 13.0
    concurrent = [9.0, 10.0, 11.0, 9.5, 10.5, 10.0]  # mean 10.0
    path = tmp_path / "reference.jsonl"
    lines = reference_lines("seq", sequential, False) + reference_lines("async", concurrent, True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    imported = run_cli("ledger", "import", str(path))
    assert (imported.exit_code, imported.stderr) == (0, "")
    assert imported.stdout.startswith("imported 48 events")

    result = run_cli("ledger", "compare", "--by", "flag:async_thesis", "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["baseline"] == "false"
    arms = {arm["label"]: arm for arm in document["arms"]}
    assert arms["false"]["tasks"] == arms["true"]["tasks"] == 6
    assert arms["false"]["latency_s"]["total"]["mean"] == pytest.approx(13.0)
    assert arms["true"]["latency_s"]["total"]["mean"] == pytest.approx(10.0)
    assert arms["true"]["latency_s"]["thesis"]["mean"] == pytest.approx(3.88)
    total = next(d for d in document["differences"] if d["metric"] == "total")
    assert total["improvement_pct"] == pytest.approx(300 / 13)
    assert total["p_value"] < 0.001 and total["significant"]
    assert document["verdicts"][0].startswith("true vs false: true is 23.1% faster than false")
    summary = json.loads(run_cli("ledger", "summary", "--json").stdout)
    assert summary["ttft_s"]["thesis"]["mean"] == pytest.approx(0.92)
    assert summary["tokens"] == {"input": 12 * 1712, "output": 12 * 440}
