"""``helios run`` end to end: entry point, engine, cache, evidence; the simulator as models."""

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from helios.sim import Fault, LatencyProfile, SimServer
from tests.cli.conftest import RunCli, default_sigint
from tests.cli.test_ask import write_config
from tests.cli.test_basics import assert_one_line_error

GOAL = "Should a five-person startup adopt microservices?"
EXAMPLES = Path(__file__).parents[2] / "examples" / "startup"
SIM_MODEL = ("--model", "openai:gpt-5.4-mini")


def test_json_result_then_everything_from_cache(
    run_cli: RunCli, sim: SimServer, tmp_path: Path
) -> None:
    write_config(tmp_path, sim.base_url)
    first = run_cli("run", GOAL, "--docs", str(EXAMPLES), *SIM_MODEL, "--json")
    assert first.exit_code == 0, first.stderr
    result = json.loads(first.stdout)
    stages = [stage["stage"] for stage in result["stages"]]
    # the simulator's words cite nothing: the citation check fails before the judge is asked
    assert stages == ["thesis", "antithesis", "synthesis", "synthesis"]
    assert result["evidence"]["passages"][0]["id"] == "E1"
    assert result["evidence"]["documents"] == 2
    assert all(stage["cache"] is None for stage in result["stages"])
    events = [event["type"] for event in result["events"]]
    assert events[0] == "task_started" and events[-1] == "task_finished"
    assert "evidence_gathered" in events and "gate_verdict" in events

    second = json.loads(run_cli("run", GOAL, "--docs", str(EXAMPLES), *SIM_MODEL, "--json").stdout)
    assert all(stage["cache"] == "L2" for stage in second["stages"])
    assert second["evidence"]["from_cache"] is True
    assert second["answer"] == result["answer"]
    lookups = [e for e in second["events"] if e["type"] == "cache_lookup"]
    assert lookups and all(lookup["hit"] for lookup in lookups)


def test_piped_output_streams_personas_and_prints_the_summary(
    run_cli: RunCli, sim: SimServer, tmp_path: Path
) -> None:
    write_config(tmp_path, sim.base_url)
    result = run_cli(
        "run",
        GOAL,
        *SIM_MODEL,
        "--flag",
        "orchestration.max_passes=1",
        "--flag",
        "cache.enabled=false",
    )
    assert result.exit_code == 0, result.stderr
    for header in ("## thesis", "## antithesis", "## synthesis"):
        assert header in result.stderr  # live text goes to stderr when stdout is not a TTY
    for section in ("Answer", "Stages", "gate, pass 1", "total"):
        assert section in result.stdout
    assert "Evidence: none" in result.stdout


def test_flags_reach_the_pipeline(run_cli: RunCli, sim: SimServer, tmp_path: Path) -> None:
    write_config(tmp_path, sim.base_url)
    result = run_cli(
        "run",
        GOAL,
        *SIM_MODEL,
        "--json",
        "--flag",
        "orchestration.async_thesis.enabled=false",
        "--flag",
        "orchestration.max_passes=1",
        "--flag",
        "personas.thesis.streaming=false",
    )
    assert result.exit_code == 0, result.stderr
    flags = json.loads(result.stdout)["flags"]
    assert flags["async_thesis"] is False and flags["max_passes"] == 1
    assert flags["thesis_streaming"] is False


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("   ",), ("goal is empty",)),
        ((GOAL, "--docs", "no/such/folder"), ("no/such/folder",)),
        ((GOAL, "extra.md"), ("unexpected argument 'extra.md'",)),
        ((GOAL, "--flag", "orchestration.max_passes"), ("expected key=value",)),
        ((GOAL, "--flag", "orchestration.max_pases=3"), ("max_pases", "unknown key")),
        ((GOAL, "--flag", "orchestration.max_passes=0"), ("max_passes",)),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    run_cli: RunCli, args: tuple[str, ...], fragments: tuple[str, ...]
) -> None:
    result = run_cli("run", *args)
    assert result.exit_code == 2, result.stderr
    assert_one_line_error(result.stderr, *fragments)


def test_binary_and_oversized_documents_are_rejected(run_cli: RunCli, tmp_path: Path) -> None:
    binary = tmp_path / "blob.md"
    binary.write_bytes(b"\x00\x01\x02binary")
    result = run_cli("run", GOAL, "--docs", str(binary))
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, str(binary))
    big = tmp_path / "big.md"
    big.write_text("word " * 100)
    result = run_cli(
        "run", GOAL, "--docs", str(big), "--flag", "orchestration.evidence.max_document_bytes=50"
    )
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, str(big), "orchestration.evidence.max_document_bytes")


def test_provider_down_mid_run_is_one_line(run_cli: RunCli, sim: SimServer, tmp_path: Path) -> None:
    write_config(tmp_path, sim.base_url)
    sim.state.inject(Fault(kind="drop", after_chunks=2), times=None)
    # no cache: an earlier test's run of the same goal would answer it (L3 at least)
    result = run_cli("run", GOAL, *SIM_MODEL, "--no-stream", "--flag", "cache.enabled=false")
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "interrupted after")


def test_ctrl_c_exits_130_and_is_recorded_as_cancelled(
    make_sim: Callable[..., SimServer],
    tmp_path: Path,
    run_cli: RunCli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slow = make_sim(latency=LatencyProfile(tokens_per_s=4), reply_tokens=200)
    write_config(tmp_path, slow.base_url)
    ledger = tmp_path / "ledger.sqlite3"
    helios = Path(sys.executable).with_name("helios")
    process = subprocess.Popen(
        # no cache: an earlier test's run of the same goal would answer at once (L3 at least)
        [str(helios), "run", GOAL, *SIM_MODEL, "--flag", "cache.enabled=false"],
        cwd=tmp_path,
        env={**os.environ, "HELIOS_LEDGER__PATH": str(ledger)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=default_sigint,
    )
    assert process.stderr is not None
    process.stderr.read(1)  # the thesis has started streaming
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130
    assert b"Traceback" not in stderr
    # the ledger says cancelled: no error, no failure, outside the success rate
    monkeypatch.setenv("HELIOS_LEDGER__PATH", str(ledger))
    summary = json.loads(run_cli("ledger", "summary", "--json").stdout)
    assert (summary["tasks"], summary["cancelled"], summary["succeeded"]) == (1, 1, 0)
    assert (summary["errors"], summary["success_rate"]) == ({}, None)
    report = json.loads(run_cli("monitor", "--once", "--json").stdout)
    assert report["metrics"]["error_rate"] == {"value": None, "samples": 0}


def test_default_local_model_runs_offline(run_cli: RunCli) -> None:
    """README command (a) in small: the embedded model, real evidence, then the cache."""
    pytest.importorskip("llama_cpp", reason="needs helios[local]")
    short = [
        "--flag",
        "orchestration.max_passes=1",
        *[
            arg
            for role in ("thesis", "antithesis", "synthesis")
            for arg in ("--flag", f"personas.{role}.max_tokens=24")
        ],
        "--flag",
        "personas.judge.max_tokens=160",  # room for the whole verdict, whatever the paths
    ]
    first = run_cli("run", GOAL, "--docs", str(EXAMPLES), "--json", *short)
    assert first.exit_code == 0, first.stderr
    result = json.loads(first.stdout)
    assert {stage["provider"] for stage in result["stages"]} == {"llamacpp"}
    assert result["passes"][0]["judge"]["valid"] is True  # the grammar holds the judge to JSON
    second = json.loads(run_cli("run", GOAL, "--docs", str(EXAMPLES), "--json", *short).stdout)
    assert all(stage["cache"] == "L2" for stage in second["stages"])
    assert second["evidence"]["from_cache"] is True


def test_an_auto_run_records_every_event_under_its_task_id(
    run_cli: RunCli, sim: SimServer, tmp_path: Path
) -> None:
    """Routing and budget decisions join the run's task like its persona calls do."""
    write_config(tmp_path, sim.base_url)
    with (tmp_path / "helios.yaml").open("a") as config:
        config.write(
            "tiers: {strong: opus, fast: sonnet, local: 'openai:gpt-5.4-mini'}\n"
            "cache: {enabled: false}\n"
            "governor:\n"
            "  enabled: true\n"
            f"  path: '{tmp_path / 'governor.sqlite3'}'\n"
            "  budgets:\n"
            "    - {account: team, windows: [{name: 5h, kind: session, limit: 100000000}]}\n"
        )
    result = run_cli("run", GOAL, "--docs", str(EXAMPLES), "--model", "auto", "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    events = document["events"]
    assert {event["task_id"] for event in events} == {document["task_id"]}
    kinds = {event["type"] for event in events}
    assert {"route_decision", "governor_decision", "persona_llm_run"} <= kinds
    routes = [event for event in events if event["type"] == "route_decision"]
    calls = [event for event in events if event["type"] == "persona_llm_run"]
    assert len(routes) == len(calls)  # one decision per call that reached a model
    assert {f"{call['provider']}:{call['model']}" for call in calls} <= {
        route["model"] for route in routes
    }
