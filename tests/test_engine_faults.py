"""The engine under provider faults: retried streams start over honestly, every failed
attempt is recorded, and a prompt that cannot fit is refused before any provider call."""

from __future__ import annotations

import random

import pytest

from helios.call_events import RETRY_KIND, LedgerRecorder
from helios.catalog import Catalog
from helios.config.governor import BudgetSettings, WindowSettings
from helios.config.settings import Settings
from helios.engine import Engine
from helios.errors import BudgetExceeded, PromptTooLong, ProviderUnavailable
from helios.governance.governor import Governor
from helios.governance.state import MemoryState
from helios.ledger.events import ErrorEvent, PersonaLLMRun
from helios.ledger.sink import MemorySink
from helios.messages import Chunk, Request, SamplingParams
from helios.providers.function import FunctionProvider, Reply
from helios.providers.registry import ProviderRegistry
from helios.providers.retry import RetryingProvider

HAIKU = "claude-haiku-4-5"  # 200,000 tokens of context in the catalogue
MEGABYTE_GOAL = "word " * 200_000  # 1 MB: about 250,000 tokens by the estimate


def world(
    replies: list[Reply], *, name: str = "f", model: str = "m", governor: Governor | None = None
) -> tuple[Engine, FunctionProvider, MemorySink]:
    catalog = Catalog.load()
    registry = ProviderRegistry(Settings(), catalog)
    inner = FunctionProvider(replies=replies, name=name, model=model)
    registry.add(RetryingProvider(inner, max_retries=2, base_delay_s=0.01, rng=random.Random(0)))
    sink = MemorySink()
    engine = Engine(registry, catalog, governor=governor, observers=[LedgerRecorder(sink)])
    return engine, inner, sink


async def drain(engine: Engine, request: Request, *, restartable: bool) -> list[Chunk]:
    stream = engine.stream(request, restartable=restartable)
    return [chunk async for chunk in stream]


async def test_a_restartable_caller_is_told_and_gets_the_new_attempt_whole() -> None:
    engine, inner, sink = world([["par", "tial", OSError("drop")], ["whole ", "reply"]])
    request = Request.of("x", model="f:m").with_context(task_id="t1", stage="thesis")
    stream = engine.stream(request, restartable=True)
    chunks = [chunk async for chunk in stream]
    seen = ["<restart>" if chunk.restart else chunk.text for chunk in chunks]
    assert seen[:3] == ["par", "tial", "<restart>"]
    assert "".join(seen[3:]) == "whole reply"
    completion = stream.completion
    assert completion is not None and completion.text == "whole reply"
    [retry] = stream.retries
    assert retry.spec == "f:m"
    assert retry.reason.startswith("attempt 1 of 3 failed: stream interrupted after 7 characters")
    assert completion.retries == (f"f:m: {retry.reason}",)
    [event] = [e for e in sink.events if isinstance(e, ErrorEvent)]
    assert (event.kind, event.task_id, event.stage) == (RETRY_KIND, "t1", "thesis")
    assert event.message == f"f:m: {retry.reason}"
    [run] = [e for e in sink.events if isinstance(e, PersonaLLMRun)]
    assert run.output_tokens == 2  # the answer's usage, not the broken attempt's
    assert len(inner.calls) == 2


async def test_a_caller_that_cannot_take_text_back_fails_without_another_attempt() -> None:
    engine, inner, sink = world([["par", "tial", OSError("drop")], "never sent"])
    with pytest.raises(ProviderUnavailable) as info:
        await drain(engine, Request.of("x", model="f:m"), restartable=False)
    assert info.value.partial_text == "partial"
    assert "already passed on (attempt 1 of 3 failed: stream interrupted" in str(info.value)
    assert "retrying" not in str(info.value)  # it was not retried
    assert len(inner.calls) == 1
    [event] = [e for e in sink.events if isinstance(e, ErrorEvent)]
    assert event.kind == RETRY_KIND and "stream interrupted" in event.message


async def test_a_retry_before_any_text_is_invisible_to_any_caller_but_recorded() -> None:
    engine, _, sink = world([ProviderUnavailable("overloaded"), "fine"])
    chunks = await drain(engine, Request.of("x", model="f:m"), restartable=False)
    assert all(chunk.restart is None for chunk in chunks)
    assert "".join(chunk.text for chunk in chunks) == "fine"
    [event] = [e for e in sink.events if isinstance(e, ErrorEvent)]
    assert event.message == "f:m: attempt 1 of 3 failed: overloaded; retrying in 0.0 s"


async def test_a_retried_complete_call_records_its_attempts() -> None:
    engine, _, sink = world([ProviderUnavailable("overloaded"), "fine"])
    completion = await engine.complete(Request.of("x", model="f:m"))
    assert completion.text == "fine" and completion.retries == ("f:m: overloaded",)
    [event] = [e for e in sink.events if isinstance(e, ErrorEvent)]
    assert event.kind == RETRY_KIND and event.message == "f:m: overloaded"


async def test_a_prompt_past_the_context_window_is_refused_before_the_provider() -> None:
    # a double posing as a catalogued Claude model: 200,000 tokens of context
    engine, inner, _ = world(["never"], name="anthropic", model=HAIKU)
    with pytest.raises(PromptTooLong) as info:
        await engine.complete(Request.of(MEGABYTE_GOAL, model=f"anthropic:{HAIKU}"))
    error = info.value
    assert error.context_window == 200_000 and error.tokens > 200_000
    assert "1,000,000 characters" in str(error)
    assert f"anthropic:{HAIKU}'s context window of 200,000 tokens" in str(error)
    assert inner.calls == []


async def test_the_output_allowance_counts_toward_the_window() -> None:
    engine, inner, _ = world(["fits"], name="anthropic", model=HAIKU)
    prompt = "word " * 120_000  # about 150,000 tokens
    spec = f"anthropic:{HAIKU}"
    assert (await engine.complete(Request.of(prompt, model=spec))).text == "fits"
    asking_more = Request.of(prompt, model=spec, params=SamplingParams(max_tokens=60_000))
    with pytest.raises(PromptTooLong, match="plus the 60,000 output tokens asked for"):
        await engine.complete(asking_more)
    assert len(inner.calls) == 1


async def test_with_the_governor_an_oversized_prompt_is_refused_before_the_provider() -> None:
    # fits the context (400,000), not the budget: the governor's reservation refuses it
    budget = BudgetSettings(
        windows=[WindowSettings(name="session", limit=100_000)], on_exhausted="reject"
    )
    sink = MemorySink()
    governor = Governor(MemoryState(), [budget], Catalog.load(), sink=sink)
    engine, inner, _ = world(["never"], name="openai", model="gpt-5-mini", governor=governor)
    with pytest.raises(BudgetExceeded, match="has no room for gpt-5-mini"):
        await engine.complete(Request.of(MEGABYTE_GOAL, model="openai:gpt-5-mini"))
    assert inner.calls == []


async def test_a_complete_call_that_fails_every_attempt_records_the_earlier_ones() -> None:
    engine, inner, sink = world(
        [
            ProviderUnavailable("overloaded", provider="f", model="m"),
            ProviderUnavailable("overloaded", provider="f", model="m"),
            ProviderUnavailable("gone", provider="f", model="m"),
        ]
    )
    with pytest.raises(ProviderUnavailable) as info:
        await engine.complete(Request.of("x", model="f:m"))
    assert info.value.attempts == ("overloaded", "overloaded", "gone")
    assert str(info.value) == (
        "f:m: gone on attempt 3 (earlier attempts: 1) overloaded; 2) overloaded)"
    )
    events = [e for e in sink.events if isinstance(e, ErrorEvent)]
    assert [e.message for e in events] == ["f:m: overloaded", "f:m: overloaded"]
    assert len(inner.calls) == 3
