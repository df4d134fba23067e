"""How the CLI writes what it shows: acceptance next to success, cancelled tasks apart,
unknown costs as ``unknown``, moments in ISO 8601, warnings on stderr on their own line,
tables whole when piped."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from helios.ledger.events import Event
from helios.sim import SimServer
from tests.analysis.test_analysis import EPOCH, build_task, gated_task, mixed_outcomes
from tests.cli.conftest import RunCli
from tests.cli.test_ledger_cli import write_jsonl

HELIOS = Path(sys.executable).with_name("helios")
ISO_MOMENT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d")
SIM_MODEL = "openai:gpt-5.4-mini"


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ledger.sqlite3"
    monkeypatch.setenv("HELIOS_LEDGER__PATH", str(path))
    return path


def imported(run_cli: RunCli, tmp_path: Path, events: list[Event]) -> None:
    result = run_cli("ledger", "import", str(write_jsonl(tmp_path / "events.jsonl", events)))
    assert result.exit_code == 0, result.stderr


def local_iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


# -- acceptance and cancellations in ledger summary / compare / last ----------------------
def test_summary_shows_acceptance_beside_success_and_cancelled_apart(
    run_cli: RunCli, ledger: Path, tmp_path: Path
) -> None:
    imported(run_cli, tmp_path, mixed_outcomes())
    result = run_cli("ledger", "summary")
    assert result.exit_code == 0, result.stderr
    headline = result.stdout.splitlines()[0]
    assert headline.startswith(
        "9 tasks · 6/7 succeeded (85.7%) · 2 cancelled · 3/5 accepted by the quality gate "
        "(60.0%, 2 without a gate) · "
    ), headline
    assert "errors: ProviderTimeout 1" in result.stdout  # a cancellation is no error
    document = json.loads(run_cli("ledger", "summary", "--json").stdout)
    assert document["success_rate"] == pytest.approx(6 / 7)
    assert (document["judged"], document["accepted"], document["acceptance_rate"]) == (5, 3, 0.6)
    assert (document["cancelled"], document["errors"]) == (2, {"ProviderTimeout": 1})


def test_all_succeeded_none_accepted_says_so(run_cli: RunCli, ledger: Path, tmp_path: Path) -> None:
    events = [e for n in range(3) for e in gated_task(f"t{n}", EPOCH + 10 * n, [False, False])]
    imported(run_cli, tmp_path, events)
    headline = run_cli("ledger", "summary").stdout.splitlines()[0]
    assert "3/3 succeeded (100.0%) · 0/3 accepted by the quality gate (0.0%)" in headline


def test_compare_shows_success_and_acceptance_per_arm(
    run_cli: RunCli, ledger: Path, tmp_path: Path
) -> None:
    baseline = [
        e
        for n in range(5)
        for e in gated_task(f"s{n}", EPOCH + 500 + 10 * n, [True], flags={"async_thesis": False})
    ]
    imported(run_cli, tmp_path, [*mixed_outcomes(EPOCH, {"async_thesis": True}), *baseline])
    result = run_cli("ledger", "compare", "--by", "flag:async_thesis")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("┃ arm "))
    assert [cell.strip() for cell in header.split("┃")[1:5]] == [
        "arm",
        "tasks",
        "succeeded",
        "accepted",
    ]
    arms = lines[lines.index(header) + 2 : lines.index(header) + 4]  # under the rule
    cells = [[cell.strip() for cell in row.split("│")[1:5]] for row in arms]
    assert cells == [
        ["false", "5", "5/5 (100.0%)", "5/5 (100.0%)"],
        ["true", "9", "6/7 (85.7%)", "3/5 (60.0%)"],
    ]
    document = json.loads(
        run_cli("ledger", "compare", "--by", "flag:async_thesis", "--json").stdout
    )
    arms = {arm["label"]: arm for arm in document["arms"]}
    assert (arms["true"]["success_rate"], arms["true"]["acceptance_rate"]) == (
        pytest.approx(6 / 7),
        0.6,
    )
    assert (arms["true"]["cancelled"], arms["false"]["acceptance_rate"]) == (2, 1.0)


def test_last_says_cancelled_and_gives_an_iso_start(
    run_cli: RunCli, ledger: Path, tmp_path: Path
) -> None:
    imported(run_cli, tmp_path, mixed_outcomes())  # the last task is a cancelled one
    result = run_cli("ledger", "last")
    assert result.exit_code == 0, result.stderr
    assert f"started {local_iso(EPOCH + 80)}" in result.stdout
    assert " · cancelled · " in result.stdout
    summary = run_cli("ledger", "summary").stdout.splitlines()[0]
    assert f"{local_iso(EPOCH)} → " in summary
    assert all(ISO_MOMENT.fullmatch(part.split(" · ")[-1].strip()) for part in summary.split("→"))


def test_unknown_prices_are_unknown_not_zero(run_cli: RunCli, ledger: Path, tmp_path: Path) -> None:
    unpriced = {"cost_usd": None}
    events = build_task("u", EPOCH, calls=[("thesis", 1.0, unpriced), ("synthesis", 1.0, unpriced)])
    imported(run_cli, tmp_path, events)
    summary = run_cli("ledger", "summary")
    assert "cost unknown (saved unknown) · 2 calls without a price" in summary.stdout
    assert "$0.000000" not in summary.stdout
    assert json.loads(run_cli("ledger", "summary", "--json").stdout)["cost_usd"] is None
    last = run_cli("ledger", "last")
    assert " · cost unknown · " in last.stdout and "$0.000000" not in last.stdout
    assert json.loads(run_cli("ledger", "last", "--json").stdout)["cost_usd"] is None


def test_some_unknown_prices_make_a_lower_bound(
    run_cli: RunCli, ledger: Path, tmp_path: Path
) -> None:
    events = build_task("p", EPOCH, calls=[("thesis", 1.0, {"cost_usd": None}), ("synthesis", 1.0)])
    imported(run_cli, tmp_path, events)
    assert "cost at least $0.010000" in run_cli("ledger", "summary").stdout


def test_ask_with_a_model_without_a_price_says_unknown(
    run_cli: RunCli, sim: SimServer, tmp_path: Path
) -> None:
    (tmp_path / "helios.yaml").write_text(
        f"providers:\n  openai: {{base_url: '{sim.base_url}/v1', api_key: test}}\n"
        "cache: {enabled: false}\n"
    )
    result = run_cli("ask", "hello", "--model", "openai:not-in-the-catalogue")
    assert result.exit_code == 0, result.stderr
    assert "cost unknown (not in the catalogue)" in result.stderr
    assert "$0.000000" not in result.stderr


# -- tables whole when piped --------------------------------------------------------------
def wide_ledger(run_cli: RunCli, tmp_path: Path) -> None:
    calls = [(f"a_stage_with_a_long_name_{n}", 1.0) for n in range(4)]
    events = [
        e
        for n in range(6)
        for e in build_task(f"t{n}", EPOCH + 10 * n, calls=calls, flags={"arm": n % 2 == 0})
    ]
    imported(run_cli, tmp_path, events)


def test_tables_keep_their_width_when_piped(
    run_cli: RunCli, ledger: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wide_ledger(run_cli, tmp_path)
    monkeypatch.delenv("COLUMNS")  # rich's own default for a pipe: 80 columns
    result = run_cli("ledger", "compare", "--by", "flag:arm")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) > 80
    assert not re.search(r"\S…", result.stdout)  # no cell cut short ("0 ms … 2 ms" is a CI)
    # one line per arm, every column there
    header = next(line for line in lines if line.startswith("┃ arm "))
    assert "a_stage_with_a_long_name_3" in header
    row = lines[lines.index(header) + 2]
    assert row.startswith("│ false") and row.count("│") == header.count("┃")


def test_a_real_pipe_gets_the_whole_table(ledger: Path, tmp_path: Path, run_cli: RunCli) -> None:
    wide_ledger(run_cli, tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    done = subprocess.run(
        [str(HELIOS), "ledger", "compare", "--by", "flag:arm"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert not re.search(r"\S…", done.stdout)
    header = next(line for line in done.stdout.splitlines() if line.startswith("┃ arm "))
    assert "┃ a_stage_with_a_long_name_3 ┃" in header


# -- warnings on stderr, on their own line ------------------------------------------------
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def broken_cache_config(tmp_path: Path, sim: SimServer) -> None:
    """An L2 cache on a Redis nobody listens on: each lookup and store logs a warning."""
    (tmp_path / "helios.yaml").write_text(
        f"providers:\n  openai: {{base_url: '{sim.base_url}/v1', api_key: test}}\n"
        "cache:\n"
        "  backend: redis\n"
        f"  redis_url: redis://127.0.0.1:{closed_port()}/12\n"
        "  semantic: {enabled: false}\n"
        f"ledger: {{path: {tmp_path / 'ledger.sqlite3'}}}\n"
    )


def test_a_cache_warning_never_lands_in_the_answer(
    run_cli: RunCli, sim: SimServer, tmp_path: Path
) -> None:
    broken_cache_config(tmp_path, sim)
    result = run_cli("ask", "Explain HNSW briefly", "--model", SIM_MODEL)
    assert result.exit_code == 0, result.stderr
    assert "L2 cache" not in result.stdout and "warning" not in result.stdout
    warnings = [line for line in result.stderr.splitlines() if "L2 cache" in line]
    assert warnings and all(line.startswith("warning: L2 cache") for line in warnings)
    (tmp_path / "helios.yaml").write_text(
        f"providers:\n  openai: {{base_url: '{sim.base_url}/v1', api_key: test}}\n"
        "cache: {enabled: false}\n"
    )
    clean = run_cli("ask", "Explain HNSW briefly", "--model", SIM_MODEL)
    assert result.stdout == clean.stdout  # the answer, and nothing else


def test_on_a_terminal_a_warning_starts_on_its_own_line(sim: SimServer, tmp_path: Path) -> None:
    """stdout and stderr on one terminal: the streamed answer's line is open when the cache
    store fails at its end; the warning must not be glued to it."""
    broken_cache_config(tmp_path, sim)
    leader, follower = pty.openpty()
    env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200"}
    process = subprocess.Popen(
        [str(HELIOS), "ask", "Explain HNSW briefly", "--model", SIM_MODEL],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    output = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1)
        if not ready:
            if process.poll() is not None:
                break
            continue
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert process.wait(timeout=30) == 0, output
    text = output.decode().replace("\r\n", "\n")
    lines = text.splitlines()
    warnings = [line for line in lines if "L2 cache" in line]
    assert len(warnings) == 2, text  # the lookup's, then the store's at the answer's end
    assert all(line.startswith("warning: L2 cache") for line in warnings), text
    answer = lines[lines.index(warnings[0]) + 1]
    assert answer.strip() and "warning" not in answer  # the answer, whole, on its own line


def test_run_with_a_model_without_a_price_says_unknown(
    run_cli: RunCli, sim: SimServer, tmp_path: Path
) -> None:
    (tmp_path / "helios.yaml").write_text(
        f"providers:\n  openai: {{base_url: '{sim.base_url}/v1', api_key: test}}\n"
        "cache: {enabled: false}\n"
        f"ledger: {{path: {tmp_path / 'ledger.sqlite3'}}}\n"
    )
    args = ["run", "Is a monolith fine for a team of five?", "--model", "openai:no-price"]
    result = run_cli(*args, "--no-stream", "--flag", "orchestration.max_passes=1")
    assert result.exit_code == 0, result.stderr
    assert "cost unknown (saved unknown)" in result.stdout
    assert "$0.000000" not in result.stdout and "$0.00000 " not in result.stdout
    stages = [line for line in result.stdout.splitlines() if "openai:no-price" in line]
    assert stages and all(line.rstrip(" │").endswith("unknown") for line in stages)
    document = json.loads(run_cli(*args, "--json", "--flag", "orchestration.max_passes=1").stdout)
    assert document["totals"]["cost_usd"] is None
    assert document["totals"]["unpriced_calls"] == len(document["stages"])


def test_cache_stats_says_unknown_for_savings_without_a_price(
    run_cli: RunCli, ledger: Path, tmp_path: Path
) -> None:
    now = time.time()
    hit = {"cache_layer": "L2", "cost_usd": 0.0, "cost_saved_usd": None}
    events = build_task("h", now - 60, calls=[("thesis", 1.0, hit), ("antithesis", 1.0)])
    imported(run_cli, tmp_path, events)
    result = run_cli("cache", "stats")
    assert result.exit_code == 0, result.stderr
    [thesis] = [line for line in result.stdout.splitlines() if line.startswith("│ thesis")]
    assert "unknown" in thesis and "0.000000" not in thesis
    [antithesis] = [line for line in result.stdout.splitlines() if line.startswith("│ antithesis")]
    assert "$0.000000" in antithesis  # no hit: nothing saved, and that is known


def test_keys_list_shows_iso_moments(
    run_cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HELIOS_KEYS__PATH", str(tmp_path / "keys.sqlite3"))
    before = time.time()
    assert run_cli("keys", "create", "--tenant", "acme", "--expires", "30d").exit_code == 0
    listed = run_cli("keys", "list").stdout
    moments = ISO_MOMENT.findall(listed)
    assert len(moments) == 2, listed  # expires, created; never revoked
    created = datetime.fromisoformat(moments[1]).timestamp()
    assert before - 1 <= created <= time.time()
