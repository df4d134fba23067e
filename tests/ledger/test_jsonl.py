"""JSONL export and import: Helios lines, the reference design's lines, corrupt lines."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from helios.errors import InputError, LedgerError
from helios.ledger.events import (
    AsyncFallback,
    ErrorEvent,
    Event,
    GateVerdict,
    PersonaLLMRun,
    TaskFinished,
    TaskStarted,
)
from helios.ledger.jsonl import MAX_LISTED_PROBLEMS, export_jsonl, import_jsonl, parse_line
from helios.ledger.memory import MemoryLedgerStore
from helios.ledger.sqlite import SQLiteLedgerStore
from helios.ledger.store import ANY_EVENT, EventQuery
from tests.ledger.conftest import EPOCH, task_events
from tests.ledger.test_store_contract import one_of_each

JUNE_FIRST_NOON = datetime(2025, 6, 1, 12, tzinfo=UTC).timestamp()


class CountingStore(MemoryLedgerStore):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    async def append(self, events: Sequence[Event]) -> None:
        self.batches.append(len(events))
        await super().append(events)


def write_lines(path: Path, lines: list[str | dict[str, object]]) -> Path:
    path.write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    )
    return path


async def test_export_then_import_round_trips(tmp_path: Path) -> None:
    source = SQLiteLedgerStore(tmp_path / "source.sqlite3")
    events = [*one_of_each(), *task_events("a")]
    await source.append(events)
    out = io.StringIO()
    assert await export_jsonl(source, ANY_EVENT, out) == len(events)
    await source.aclose()
    lines = out.getvalue().splitlines()
    assert len(lines) == len(events)
    assert json.loads(lines[0])["type"] == "task_started"

    path = tmp_path / "events.jsonl"
    path.write_text(out.getvalue())
    target = CountingStore()
    report = await import_jsonl(path, target)
    assert (report.imported, report.lines) == (len(events), len(events))
    assert await target.query() == events


async def test_export_follows_the_query(tmp_path: Path) -> None:
    store = MemoryLedgerStore()
    await store.append([*task_events("a"), *task_events("b")])
    out = io.StringIO()
    written = await export_jsonl(store, EventQuery(task_ids=["b"], types=["task_started"]), out)
    assert written == 1
    assert json.loads(out.getvalue())["task_id"] == "b"


async def test_non_finite_floats_survive_export_and_import(tmp_path: Path) -> None:
    verdict = GateVerdict(
        task_id="t",
        pass_number=1,
        passed=True,
        evidence_ok=True,
        judge_pass=True,
        judge_score=math.nan,
        judge_valid=True,
    )
    store = MemoryLedgerStore()
    await store.append([verdict])
    out = io.StringIO()
    await export_jsonl(store, ANY_EVENT, out)
    (read,) = [parse_line(line) for line in out.getvalue().splitlines()]
    assert isinstance(read, GateVerdict) and math.isnan(read.judge_score)


async def test_reference_events_are_mapped(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "reference.jsonl",
        [
            {
                "event": "task_started",
                "task_id": "t1",
                "goal": "Ship it?",
                "async_thesis": True,
                "flags": {"max_passes": 2},
                "timestamp": "2025-06-01T12:00:00Z",
            },
            {
                "event": "persona_llm_run",
                "task_id": "t1",
                "persona": "thesis",
                "streaming": True,
                "ttft_sec": 0.92,
                "duration_sec": 3.88,
                "model": "claude-sonnet-4-5",
                "provider": "anthropic",
                "tokens_in": 10,
                "tokens_out": 20,
                "cost": 0.01,
                "timestamp": JUNE_FIRST_NOON + 4,
            },
            {
                "event": "async_fallback",
                "task_id": "t1",
                "reason": "timeout",
                "timestamp": JUNE_FIRST_NOON + 5,
            },
            {"event": "error", "task_id": "t1", "error": "boom", "persona": "synthesis"},
            {
                "event": "task_finished",
                "task_id": "t1",
                "duration_sec": 9.5,
                "status": "failed",
                "timestamp": "2025-06-01T12:00:10",
            },
            {"event": "persona_llm_run", "task_id": 7, "persona": "antithesis"},
        ],
    )
    store = MemoryLedgerStore()
    report = await import_jsonl(path, store)
    assert report.imported == 6
    started, run, fallback, error, finished, bare = await store.query()

    assert started == TaskStarted(
        task_id="t1",
        goal="Ship it?",
        flags={"max_passes": 2, "async_thesis": True},
        timestamp=JUNE_FIRST_NOON,
    )
    assert isinstance(run, PersonaLLMRun)
    assert run.model_dump() == {
        **run.model_dump(),
        "persona": "thesis",
        "stage": "thesis",
        "pass_number": 1,
        "streaming": True,
        "ttft_s": 0.92,
        "duration_s": 3.88,
        "model": "claude-sonnet-4-5",
        "provider": "anthropic",
        "input_tokens": 10,
        "output_tokens": 20,
        "cost_usd": 0.01,
        "timestamp": JUNE_FIRST_NOON + 4,
    }
    assert run.perceived_improvement == pytest.approx(1 - 0.92 / 3.88)
    assert fallback == AsyncFallback(task_id="t1", reason="timeout", timestamp=JUNE_FIRST_NOON + 5)
    assert isinstance(error, ErrorEvent)
    assert (error.kind, error.message, error.stage) == ("error", "boom", "synthesis")
    assert isinstance(finished, TaskFinished)
    assert (finished.success, finished.duration_s) == (False, 9.5)
    assert finished.timestamp == JUNE_FIRST_NOON + 10  # no zone: UTC
    # everything missing: sensible defaults (non-streaming: the first token is the reply)
    assert isinstance(bare, PersonaLLMRun)
    assert (bare.task_id, bare.stage, bare.model, bare.streaming) == (
        "7",
        "antithesis",
        "unknown",
        False,
    )
    assert (bare.ttft_s, bare.duration_s, bare.perceived_improvement) == (0.0, 0.0, 0.0)
    assert bare.cost_usd is None


async def test_other_reference_types_rename_seconds(tmp_path: Path) -> None:
    event = parse_line(
        json.dumps(
            {
                "event": "evidence_gathered",
                "task_id": "t",
                "documents": 1,
                "chunks": 2,
                "passages": 1,
                "embedded_chunks": 2,
                "from_cache": True,
                "duration_sec": 0.5,
                "timestamp": int(JUNE_FIRST_NOON),
            }
        )
    )
    assert event.type == "evidence_gathered" and event.timestamp == JUNE_FIRST_NOON


async def test_a_file_with_bad_lines_imports_nothing_and_names_each(tmp_path: Path) -> None:
    good = TaskStarted(task_id="ok", goal="g", timestamp=JUNE_FIRST_NOON)
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(
        b"\n".join(
            [
                good.model_dump_json().encode(),  # 1
                b'{"event": "persona_llm_run", "task_id": "t1", "ttft_sec": 0.1',  # 2 truncated
                b"",  # 3 blank: ignored
                b'{"event": "quantum_leap", "task_id": "t1"}',  # 4
                b'{"event": "task_started", "goal": "no id"}',  # 5
                b'{"type": "task_finished", "task_id": "t", "success": "maybe"}',  # 6
                b"[1, 2, 3]",  # 7
                b'{"task_id": "t"}',  # 8
                b'{"event": "error", "task_id": "t", "timestamp": "yesterday"}',  # 9
                b'{"event": "error", "task_id": "t", "message": "\xff"}',  # 10 not UTF-8
                b'{"event": "async_fallback", "task_id": "t2", "reason": "slow"}',  # 11 fine
                b'{"event": "task_started", "task_id": "ms", "timestamp": 1748779200000}',  # 12
                b'{"event": "task_finished", "task_id": "t", "duration_sec": -3}',  # 13
                b'{"event": "persona_llm_run", "task_id": "t", "cost": "NaN"}',  # 14
                b'{"event": "persona_llm_run", "task_id": "t", "tokens_in": -7}',  # 15
                b'{"type": "task_started", "task_id": "t", "goal": "g", "timestamp": 1e300}',  # 16
            ]
        )
        + b"\n"
    )
    store = CountingStore()
    with pytest.raises(InputError) as info:
        await import_jsonl(path, store)
    assert store.batches == [] and await store.count() == 0  # all or nothing
    message = str(info.value)
    first, *listed = message.splitlines()
    assert first == f"{path}: nothing imported: 13 lines not a valid event (each listed below)"
    reasons = {int(line.split(":")[1]): line.split(":", 2)[2].strip() for line in listed}
    assert all(line.startswith(f"  {path}:") for line in listed)
    assert sorted(reasons) == [2, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16]
    assert reasons[2].startswith("not JSON")
    assert reasons[4] == "unknown event type 'quantum_leap'"
    assert reasons[5] == "missing task_id"
    assert reasons[6].startswith("invalid task_finished event: success:")
    assert reasons[7] == "not a JSON object but list"
    assert reasons[8].startswith("no event type")
    assert "yesterday" in reasons[9]
    assert reasons[10] == "not UTF-8 text"
    assert reasons[12].startswith("implausible task_started event: timestamp: 1.74878e+12 is")
    assert "milliseconds" in reasons[12]
    assert reasons[13].startswith("implausible task_finished event: duration_s: -3")
    assert reasons[14].startswith("implausible persona_llm_run event: cost_usd: nan")
    assert reasons[15].startswith("implausible persona_llm_run event: input_tokens: -7")
    assert reasons[16].startswith("implausible task_started event: timestamp: 1e+300")


async def test_an_import_error_lists_twenty_bad_lines_and_counts_the_rest(
    tmp_path: Path,
) -> None:
    path = write_lines(tmp_path / "bad.jsonl", ["{oops"] * 25)
    with pytest.raises(InputError) as info:
        await import_jsonl(path, MemoryLedgerStore())
    lines = str(info.value).splitlines()
    assert lines[0] == f"{path}: nothing imported: 25 lines not a valid event"
    assert len(lines) == 1 + MAX_LISTED_PROBLEMS + 1 and lines[-1] == "  ... and 5 more"


async def test_a_store_failure_midway_says_what_was_committed(tmp_path: Path) -> None:
    class FailingSecondBatch(CountingStore):
        async def append(self, events: Sequence[Event]) -> None:
            if self.batches:
                raise LedgerError("server gone")
            await super().append(events)

    events = [TaskStarted(task_id=f"t{n}", goal="g", timestamp=EPOCH + n) for n in range(25)]
    path = write_lines(tmp_path / "many.jsonl", [event.model_dump_json() for event in events])
    store = FailingSecondBatch()
    with pytest.raises(
        LedgerError, match=r"stopped in lines 11-20: server gone; the 10 events of lines 1-10 are"
    ):
        await import_jsonl(path, store, batch_size=10)
    assert await store.query() == events[:10]


async def test_import_appends_in_batches(tmp_path: Path) -> None:
    events = [TaskStarted(task_id=f"t{n}", goal="g", timestamp=EPOCH + n) for n in range(25)]
    lines: list[str | dict[str, object]] = [event.model_dump_json() for event in events]
    lines.insert(10, "")
    path = write_lines(tmp_path / "many.jsonl", lines)
    store = CountingStore()
    report = await import_jsonl(path, store, batch_size=10)
    assert (report.imported, report.lines) == (25, 26)
    assert store.batches == [10, 10, 5]
    assert await store.query() == events


async def test_a_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        await import_jsonl(tmp_path / "absent.jsonl", MemoryLedgerStore())
