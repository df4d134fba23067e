"""``helios cache``: run in-process through the real entry point against the default cache
(SQLite L2 and a usearch L3 with the local embedder) in the test's temporary directory."""

from __future__ import annotations

import asyncio
import importlib
import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx2
import pytest

from helios.cache.factory import cache_manager
from helios.catalog import Catalog
from helios.config.settings import load_settings
from helios.messages import CallContext, Message, Request
from helios.sim import SimServer
from tests.cli.conftest import RunCli, default_sigint
from tests.cli.test_ask import write_config
from tests.cli.test_flags_monitor_cli import HELIOS, free_port, wait_for

# usearch loaded before onnxruntime crashes the process: see tests/server/cache_fixtures.py
importlib.import_module("onnxruntime")

QUESTION = "How do I reset my password?"
ANSWER = "Open Settings, choose Security, then Reset password."


@pytest.fixture
def cache_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache.sqlite3"
    monkeypatch.setenv("HELIOS_CACHE__PATH", str(path))
    return path


def write_jsonl(path: Path, *lines: dict[str, Any] | str) -> Path:
    text = [line if isinstance(line, str) else json.dumps(line) for line in lines]
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return path


def entries(run_cli: RunCli) -> dict[str, int | None]:
    result = run_cli("cache", "stats", "--json")
    assert result.exit_code == 0, result.stderr
    layers = json.loads(result.stdout)["layers"]
    return {layer: row["entries"] for layer, row in layers.items()}


def three_entries(tmp_path: Path) -> Path:
    return write_jsonl(
        tmp_path / "warm.jsonl",
        {"input_text": QUESTION, "response": ANSWER, "tokens_used": 12},
        {"question": "How do I delete my account?", "response": "Settings, then Delete."},
        "",
        {
            "input_text": "And how do I change it?",
            "response": "The same way.",
            "tenant": "acme",
            "task_type": "support",
            "system_prompt": "Be brief.",
            "messages": [
                {"role": "user", "content": "Where is my invoice?"},
                {"role": "assistant", "content": "Under Billing."},
            ],
        },
    )


def test_stats_of_an_empty_cache(run_cli: RunCli, cache_file: Path) -> None:
    table = run_cli("cache", "stats")
    document = json.loads(run_cli("cache", "stats", "--json").stdout)

    assert table.exit_code == 0, table.stderr
    assert "response cache: ok" in table.stdout
    assert "L2 L2_REDIS_EXACT" in table.stdout
    assert f"L2: sqlite {cache_file}, TTL 3600 s, at most 500 entries" in table.stdout
    assert "threshold 0.85" in table.stdout
    assert document["status"] == "ok"
    assert {layer: row["entries"] for layer, row in document["layers"].items()} == {
        "L1": 0,
        "L2": 0,
        "L3": 0,
    }
    assert document["layers"]["L2"]["backend"] == "sqlite"
    assert document["config"]["L3"]["threshold"] == 0.85
    assert document["config"]["L2"]["path"] == str(cache_file)


def test_stats_of_a_disabled_cache(run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELIOS_CACHE__ENABLED", "false")

    result = run_cli("cache", "stats")

    assert (result.exit_code, result.stdout.strip()) == (
        0,
        "the response cache is disabled (cache.enabled: false)",
    )


def test_warm_stores_every_line_where_the_engine_will_look(
    run_cli: RunCli, cache_file: Path, tmp_path: Path
) -> None:
    file = three_entries(tmp_path)

    result = run_cli("cache", "warm", str(file))

    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"stored 3 entries from {file}: L2 3, L3 3"
    assert entries(run_cli) == {"L1": 0, "L2": 3, "L3": 3}
    # the same question asked of the engine's cache (same settings) is answered by L2,
    # and a paraphrase by L3
    exact = asyncio.run(lookup_once(Request.of(QUESTION)))
    paraphrase = asyncio.run(lookup_once(Request.of("How can I reset my password?")))
    follow_up = asyncio.run(
        lookup_once(
            Request(
                messages=(
                    Message(role="user", content="Where is my invoice?"),
                    Message(role="assistant", content="Under Billing."),
                    Message(role="user", content="And how do I change it?"),
                ),
                system="Be brief.",
                task_type="support",
                context=CallContext(tenant="acme"),
            )
        )
    )
    assert exact == ("L2", ANSWER)
    assert paraphrase == ("L3", ANSWER)
    assert follow_up == ("L2", "The same way.")


async def lookup_once(request: Request) -> tuple[str | None, str | None]:
    settings = load_settings()
    catalog = Catalog.load()
    manager = cache_manager(settings, catalog, kind_of=str)
    assert manager is not None
    try:
        found = await manager.lookup(request, "llamacpp", "smollm2-135m-instruct")
    finally:
        await manager.aclose()
    return found.layer, found.reply.text if found.reply is not None else None


def test_warm_reports_what_l3_chose_not_to_keep(
    run_cli: RunCli, cache_file: Path, tmp_path: Path
) -> None:
    file = write_jsonl(
        tmp_path / "warm.jsonl",
        {"input_text": QUESTION, "response": ANSWER},
        {"input_text": "Write a poem.", "response": "Roses...", "temperature": 1.2},
    )

    result = run_cli("cache", "warm", str(file))

    assert result.exit_code == 0, result.stderr
    assert f"stored 2 entries from {file}: L2 2, L3 1" in result.stdout
    assert "line 2: temperature 1.2 is above cache.semantic.max_temperature 0.7" in result.stdout


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{not json", "not JSON"),
        (json.dumps({"input_text": "q"}), "response: Field required"),
        (json.dumps({"response": "r"}), "input_text (or question): missing"),
        (json.dumps({"input_text": "q", "response": "r", "tenat": "x"}), "tenat: Extra inputs"),
        (json.dumps({"input_text": "q", "response": "r", "model": "nope"}), "model: unknown model"),
        (json.dumps([1, 2]), "expected a JSON object"),
        ('{"input_text": "\\ud800 x", "response": "r"}', "not JSON ("),  # a lone surrogate
        (
            json.dumps({"input_text": "q", "response": "r", "messages": [{"role": "bot"}]}),
            "messages.0.role:",
        ),
    ],
)
def test_a_bad_line_stores_nothing_and_names_file_and_line(
    run_cli: RunCli, cache_file: Path, tmp_path: Path, bad_line: str, message: str
) -> None:
    file = write_jsonl(
        tmp_path / "warm.jsonl",
        {"input_text": QUESTION, "response": ANSWER},
        "",
        bad_line,
        {"input_text": "Another question?", "response": "Another answer."},
    )

    result = run_cli("cache", "warm", str(file))

    assert result.exit_code == 2
    assert f"{file}:3: {message}" in result.stderr
    assert "nothing stored" in result.stderr
    assert entries(run_cli) == {"L1": 0, "L2": 0, "L3": 0}


def test_several_bad_lines_are_all_named(run_cli: RunCli, cache_file: Path, tmp_path: Path) -> None:
    file = write_jsonl(tmp_path / "warm.jsonl", "{", {"input_text": "q"}, {"response": "r"})

    result = run_cli("cache", "warm", str(file))

    assert result.exit_code == 2
    for line in (1, 2, 3):
        assert f"{file}:{line}:" in result.stderr
    assert f"{file}: 3 bad lines; nothing stored" in result.stderr


def test_warm_needs_a_file_with_entries(run_cli: RunCli, cache_file: Path, tmp_path: Path) -> None:
    missing = run_cli("cache", "warm", str(tmp_path / "nope.jsonl"))
    empty = run_cli("cache", "warm", str(write_jsonl(tmp_path / "empty.jsonl", "")))

    assert (missing.exit_code, empty.exit_code) == (2, 2)
    assert "nope.jsonl: no such file" in missing.stderr
    assert "empty.jsonl: no entries to store" in empty.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "nothing selected: give --tenant, --task-type or --key, or --all to empty every"),
        (("--layer", "L2"), "or --all to empty layer L2"),
        (("--all", "--tenant", "acme"), "--all empties every layer: leave out --tenant"),
        (("--key", "l2:a:b:c", "--tenant", "a"), "--key: select by key, or by tenant"),
        (("--layer", "L3", "--key", "l2:a:b:c"), "--key: a key is an L2 key"),
        (("--layer", "L4", "--all"), "--layer L4: one of L1, L2, L3"),
    ],
)
def test_invalidate_refuses_what_selects_nothing_or_everything_by_accident(
    run_cli: RunCli, cache_file: Path, args: tuple[str, ...], message: str
) -> None:
    result = run_cli("cache", "invalidate", *args)

    assert result.exit_code == 2
    assert message in result.stderr


def test_invalidate_counts_per_layer(run_cli: RunCli, cache_file: Path, tmp_path: Path) -> None:
    assert run_cli("cache", "warm", str(three_entries(tmp_path))).exit_code == 0

    by_tenant = run_cli("cache", "invalidate", "--tenant", "acme")
    nothing = run_cli("cache", "invalidate", "--layer", "L2", "--task-type", "billing")
    only_l3 = run_cli("cache", "invalidate", "--layer", "L3", "--all", "--json")
    after_l3 = entries(run_cli)
    everything = run_cli("cache", "invalidate", "--all")

    assert by_tenant.exit_code == 0, by_tenant.stderr
    assert by_tenant.stdout.strip() == "removed 2 entries (L2 1, L3 1)"
    assert nothing.stdout.strip() == "removed 0 entries (L2 0)"
    assert json.loads(only_l3.stdout) == {"removed": {"L3": 2}, "total": 2}
    assert after_l3 == {"L1": 0, "L2": 2, "L3": 0}
    assert everything.stdout.strip() == "removed 2 entries (L2 2, L3 0, L1 0)"
    assert entries(run_cli) == {"L1": 0, "L2": 0, "L3": 0}


def test_an_unreachable_store_fails_invalidate_but_not_stats(
    run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HELIOS_CACHE__BACKEND", "redis")
    monkeypatch.setenv("HELIOS_CACHE__REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens
    monkeypatch.setenv("HELIOS_CACHE__SEMANTIC__ENABLED", "false")

    purge = run_cli("cache", "invalidate", "--tenant", "acme")
    stats = run_cli("cache", "stats", "--json")

    assert purge.exit_code == 1
    assert "error: Redis cache at 127.0.0.1:1" in purge.stderr
    assert stats.exit_code == 0
    document = json.loads(stats.stdout)
    assert document["status"] == "degraded"
    assert document["layers"]["L2"]["entries"] is None
    assert "127.0.0.1:1" in document["layers"]["L2"]["detail"]


def test_the_cache_commands_are_listed(run_cli: RunCli) -> None:
    result = run_cli("cache", "--help")

    assert result.exit_code == 0
    for command in ("stats", "invalidate", "warm"):
        assert command in result.stdout


def test_serve_answers_the_cache_api(tmp_path: Path) -> None:
    config = f"ledger:\n  enabled: false\ncache:\n  path: {tmp_path / 'cache.sqlite3'}\n"
    (tmp_path / "helios.yaml").write_text(config, encoding="utf-8")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [str(HELIOS), "serve", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    try:
        document = json.loads(wait_for(f"{base}/openapi.json", until="/api/v1/helios/cache"))
        stored = httpx2.post(
            f"{base}/api/v1/helios/cache/store",
            json={"input_text": QUESTION, "response_data": ANSWER},
        ).json()
        found = httpx2.post(
            f"{base}/api/v1/helios/cache/lookup", json={"input_text": QUESTION}
        ).json()
        health = httpx2.get(f"{base}/api/v1/helios/cache/health").json()
    finally:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=20)
    assert "/api/v1/helios/cache/lookup" in document["paths"]
    assert stored["layers_stored"] == ["L2_REDIS_EXACT", "L3_SEMANTIC"]
    assert (found["layer"], found["cached_response"]) == ("L2_REDIS_EXACT", ANSWER)
    assert health["status"] == "ok"
    assert process.returncode in (0, 130), stderr
    assert "Traceback" not in stderr
    assert "POST /api/v1/helios/cache" not in stdout + stderr  # no access log by default
    # no key in the store: loopback only, unauthenticated, and it says so
    assert "no API keys: serving unauthenticated calls as tenant 'default' on loopback" in stderr


def test_stats_show_each_personas_hits_and_savings_from_the_ledger(
    run_cli: RunCli,
    sim: SimServer,
    cache_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HELIOS_LEDGER__PATH", str(tmp_path / "ledger.sqlite3"))
    write_config(tmp_path, sim.base_url)
    for _ in range(2):  # the second call is the first one's exact repeat: an L2 hit
        asked = run_cli("ask", "Name three colours", "-p", "zeitgeist", "-m", "sonnet", "--json")
        assert asked.exit_code == 0, asked.stderr
    result = run_cli("cache", "stats", "--json")
    assert result.exit_code == 0, result.stderr
    row = json.loads(result.stdout)["personas"]["zeitgeist"]
    assert (row["calls"], row["hits"], row["misses"]) == (2, 1, 1)
    assert row["hits_by_layer"] == {"L2": 1} and row["lookups_by_layer"] == {"L2": 2}
    assert row["cost_saved_usd"] > 0 and row["time_saved_s"] > 0
    table = run_cli("cache", "stats").stdout
    assert "per persona" in table and "zeitgeist" in table
