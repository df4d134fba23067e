"""L1 across the personas of a run, through the simulator's Anthropic protocol: the shared
prefix is written once and read back, and the ledger's savings are the catalogue arithmetic."""

from typing import Any

import pytest

from helios.catalog import Catalog
from helios.config.settings import Settings
from helios.engine import CallRecord
from helios.ledger.events import PersonaLLMRun
from helios.ledger.sink import MemorySink
from helios.messages import Usage
from helios.pipeline.dialectic import DialecticPipeline
from helios.pipeline.evidence import Passage
from helios.runtime import Runtime
from helios.sim import SimServer
from tests.pipeline.helpers import ScriptedGatherer, evidence_of

pytest.importorskip("anthropic", reason="needs helios[anthropic]")

MODEL = "claude-sonnet-5-5"  # a prompt-cache minimum of 1,024 tokens
GOAL = "Should a five-person startup adopt microservices?"


def long_evidence() -> ScriptedGatherer:
    short = evidence_of(2)
    passages = tuple(
        Passage(p.id, p.source, p.start_line, p.end_line, f"{p.text} " * 80, p.score)
        for p in short.passages
    )  # about 1,500 simulator tokens in all: above the model's minimum
    return ScriptedGatherer(evidence=type(short)(**{**_fields(short), "passages": passages}))


def _fields(value: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__slots__}


class Usages:
    def __init__(self) -> None:
        self.usages: list[Usage] = []

    def on_call(self, record: CallRecord) -> None:
        assert record.completion is not None and record.completion.cache_layer is None
        self.usages.append(record.completion.usage)


async def run(sim: SimServer, *, l1: bool) -> tuple[float, float, list[Usage]]:
    """One task: (input dollars, the ledger's L1 savings, each call's usage)."""
    sim.state.reset()
    settings = Settings.model_validate(
        {
            "default_model": f"anthropic:{MODEL}",
            "providers": {"anthropic": {"base_url": sim.base_url, "api_key": "test-key"}},
            "cache": {
                "backend": "memory",
                "semantic": {"enabled": False},
                "prompt": {"enabled": l1},
            },
            "ledger": {"enabled": False},
        }
    )
    sink, usages = MemorySink(), Usages()
    async with Runtime.open(settings, sink=sink, observers=[usages]) as runtime:
        pipeline = DialecticPipeline(
            runtime.engine, runtime.settings, long_evidence(), sink=runtime.sink
        )
        await pipeline.run(GOAL)
    p = Catalog.load().get(MODEL).prices
    dollars = 1e-6 * sum(
        u.input_tokens * p.input
        + u.cache_read_tokens * p.cache_read
        + u.cache_write_5m_tokens * p.cache_write_5m
        + u.cache_write_1h_tokens * p.cache_write_1h
        for u in usages.usages
    )
    saved = sum(e.cost_saved_usd or 0.0 for e in sink.of_type(PersonaLLMRun))
    return dollars, saved, usages.usages


async def test_the_shared_prefix_is_read_back_and_the_ledger_prices_it(sim: SimServer) -> None:
    off, saved_off, calls_off = await run(sim, l1=False)
    on, saved_on, calls_on = await run(sim, l1=True)
    # the same prompts either way: the sim's replies depend on the prompt alone
    assert [u.total_input_tokens for u in calls_on] == [u.total_input_tokens for u in calls_off]
    assert saved_off == 0.0 and all(u.cache_read_tokens == 0 for u in calls_off)
    # written once (the antithesis, first to carry the evidence), read by every later call
    assert calls_on[1].cache_write_tokens > 0
    assert all(u.cache_read_tokens > 0 for u in calls_on[2:])
    assert on < 0.6 * off
    assert saved_on == pytest.approx(off - on, rel=1e-9, abs=1e-12)
