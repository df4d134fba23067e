"""``helios ask`` and ``helios run`` when the provider fails: retried streams are shown
honestly, timeouts say what happened, oversized prompts are refused before any call."""

import io
import json
import sys
from pathlib import Path

import pytest
from rich.console import Console

from helios.cli.live import LiveDisplay
from helios.pipeline.results import StageRecord
from helios.sim import Fault, SimServer
from tests.cli.conftest import RunCli
from tests.cli.test_basics import assert_one_line_error

MODEL = "openai:gpt-5.4-mini"
GOAL = "Should a five-person startup adopt microservices?"


def write_config(tmp_path: Path, base_url: str, **openai: object) -> None:
    settings = {"base_url": f"{base_url}/v1", "api_key": "test", "max_retries": 2, **openai}
    fields = ", ".join(f"{key}: {json.dumps(value)}" for key, value in settings.items())
    (tmp_path / "helios.yaml").write_text(
        f"providers:\n  openai: {{{fields}}}\n"
        "cache: {enabled: false}\n"
        f"ledger: {{path: '{tmp_path / 'ledger.sqlite3'}'}}\n"
    )


def served(sim: SimServer) -> int:
    return sim.state.stats.requests.get("openai", 0)


def test_ask_on_a_terminal_starts_the_answer_over_after_a_drop(
    run_cli: RunCli, sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(tmp_path, sim.base_url)
    whole = run_cli("ask", "Explain HNSW briefly", "--model", MODEL, "--no-stream").stdout
    sim.state.inject(Fault(kind="drop", after_chunks=3), times=1)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    result = run_cli("ask", "Explain HNSW briefly", "--model", MODEL)
    assert result.exit_code == 0, result.stderr
    abandoned, _, answer = result.stdout.partition("\n")
    assert len(abandoned.split()) == 3 and whole.startswith(abandoned)
    assert answer == whole
    assert "attempt 1 of 3 failed: stream interrupted after" in result.stderr
    assert "the answer starts over below" in result.stderr
    assert "after 1 failed attempt(s)" in result.stderr
    assert served(sim) == 3


def test_ask_into_a_pipe_fails_a_drop_after_text_it_cannot_take_back(
    run_cli: RunCli, sim: SimServer, tmp_path: Path
) -> None:
    write_config(tmp_path, sim.base_url)
    sim.state.inject(Fault(kind="drop", after_chunks=3), times=1)
    result = run_cli("ask", "Explain HNSW briefly", "--model", MODEL)
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, MODEL, "stream interrupted after", "already passed on")
    assert "retrying" not in result.stderr
    assert served(sim) == 1  # no second attempt whose text would follow the first's


def test_ask_into_a_pipe_still_retries_a_drop_before_any_text(
    run_cli: RunCli, sim: SimServer, tmp_path: Path
) -> None:
    write_config(tmp_path, sim.base_url)
    sim.state.inject(Fault(kind="drop", after_chunks=0), times=1)
    result = run_cli("ask", "Explain HNSW briefly", "--model", MODEL)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() and "after 1 failed attempt(s)" in result.stderr


def test_ask_without_a_first_token_says_so_after_each_attempt(
    run_cli: RunCli, sim: SimServer, tmp_path: Path
) -> None:
    write_config(tmp_path, sim.base_url, max_retries=1, first_token_timeout_s=0.3)
    sim.state.inject(Fault(kind="stall", seconds=30), times=None)
    result = run_cli("ask", "hi", "--model", MODEL)
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, f"{MODEL}: no first token within 0.3 s on 2 attempts")
    assert served(sim) == 2


def test_ask_stops_at_the_deadline(run_cli: RunCli, sim: SimServer, tmp_path: Path) -> None:
    write_config(tmp_path, sim.base_url, first_token_timeout_s=None, deadline_s=0.5)
    sim.state.inject(Fault(kind="stall", seconds=30), times=None)
    result = run_cli("ask", "hi", "--model", MODEL)
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "no complete reply within the 0.5 s deadline")
    assert served(sim) == 1


def test_a_prompt_too_long_for_the_model_is_refused_before_any_call(
    run_cli: RunCli, sim: SimServer, tmp_path: Path
) -> None:
    write_config(tmp_path, sim.base_url)
    goal = "word " * 200_000  # about 250,000 tokens
    result = run_cli("ask", goal, "--model", "openai:gpt-5.4-mini", "--max-tokens", "200000")
    assert result.exit_code == 2  # bad input, as for every InputError
    assert_one_line_error(result.stderr, "context window of 400,000 tokens", "gpt-5.4-mini")
    assert served(sim) == 0


def test_run_piped_marks_a_restarted_persona_and_records_the_attempt(
    run_cli: RunCli, sim: SimServer, tmp_path: Path
) -> None:
    write_config(tmp_path, sim.base_url)
    sim.state.inject(Fault(kind="drop", after_chunks=2), times=1)
    flags = (
        "--flag",
        "orchestration.max_passes=1",
        "--flag",
        "orchestration.async_thesis.enabled=false",
    )
    result = run_cli("run", GOAL, "--model", MODEL, *flags)
    assert result.exit_code == 0, result.stderr
    assert "## thesis" in result.stderr
    assert "· thesis: attempt 1 of 3 failed: stream interrupted after" in result.stderr
    assert "the text above is abandoned\n## thesis (openai:gpt-5.4-mini) · attempt 2" in (
        result.stderr
    )
    as_json = run_cli("run", GOAL, "--model", MODEL, *flags, "--json")
    assert as_json.exit_code == 0
    events = json.loads(as_json.stdout)["events"]
    assert not [e for e in events if e["type"] == "error"]  # no fault this time
    sim.state.inject(Fault(kind="rate_limit", retry_after_s=0.01), times=1)
    retried = json.loads(run_cli("run", GOAL, "--model", MODEL, *flags, "--json").stdout)
    [event] = [e for e in retried["events"] if e["type"] == "error"]
    assert event["kind"] == "provider_retry" and event["stage"] == "thesis"
    assert event["message"].startswith(f"{MODEL}: attempt 1 of 3 failed: Rate limit reached")


def test_the_live_display_on_a_terminal_clears_a_restarted_persona() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120)
    record = StageRecord(
        "thesis", "Thesis", 1, "openai", "gpt-5.4-mini", None, True, 0.1, 0.2, 5, 3, None
    )
    with LiveDisplay(console) as display:
        display.stage_started("thesis", "Thesis", 1, MODEL)
        display.chunk("thesis", "abandoned words")
        display.stage_restarted("thesis", "attempt 1 of 3 failed: stream interrupted")
        display.chunk("thesis", "kept words")
        display.stage_finished(record)
    shown = screen.getvalue()
    assert "thesis: attempt 1 of 3 failed: stream interrupted; its text starts over" in shown
    finished = shown[shown.index("── thesis") :]
    assert "kept words" in finished and "abandoned" not in finished


def test_run_refuses_a_goal_too_long_for_the_model_before_any_call(
    run_cli: RunCli, sim: SimServer, tmp_path: Path
) -> None:
    write_config(tmp_path, sim.base_url)
    goal = "word " * 200_000  # 1 MB: about 250,000 tokens, more than Haiku 4.5's 200,000
    result = run_cli("run", goal, "--model", "anthropic:claude-haiku-4-5")
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr
    assert "context window of 200,000 tokens" in result.stderr
    assert "error: the prompt is about 25" in result.stderr  # thousand tokens, and more
    assert sim.state.stats.total_requests == 0
