"""The ledger, fed the events bench/pipeline.py wrote, reproduces the benchmark's table."""

import json
from pathlib import Path

import pytest

from helios.analysis.summary import compare
from helios.ledger.jsonl import import_jsonl
from helios.ledger.memory import MemoryLedgerStore

RESULTS = Path(__file__).parents[2] / "bench" / "results"
ARMS = {
    # benchmark arm: (--by, --where, the arm's label)
    "sequential": ("flag:async_thesis", "flag:parallel_prep=false", "false"),
    "async_thesis": ("flag:async_thesis", "flag:parallel_prep=false", "true"),
    "parallel_prep": ("flag:parallel_prep", "flag:async_thesis=true", "true"),
}


@pytest.mark.parametrize("arm", ARMS)
async def test_compare_reproduces_the_benchmark_means(arm: str) -> None:
    expected = json.loads((RESULTS / "pipeline.json").read_text())["arms"][arm]
    store = MemoryLedgerStore()
    report = await import_jsonl(RESULTS / "pipeline_events.jsonl", store)
    assert report.imported == report.lines  # every line an event: nothing refused
    by, where, label = ARMS[arm]
    comparison = compare(await store.query(), by, where=[where])
    found = comparison.arm(label)
    assert found is not None and found.tasks == expected["n"]
    total = found.metrics["total"]
    assert total.mean is not None and total.sd is not None
    assert round(total.mean * 1000, 1) == round(expected["total"]["mean_ms"], 1)
    assert round(total.sd * 1000, 1) == round(expected["total"]["sd_ms"], 1)
