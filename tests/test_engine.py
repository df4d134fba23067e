import asyncio

import pytest

from helios.catalog import Catalog
from helios.engine import CallRecord, Engine
from helios.errors import ProviderUnavailable, RateLimited
from helios.messages import Request, Usage
from helios.providers.function import FunctionProvider
from helios.providers.registry import ProviderRegistry
from helios.settings import Settings


class Recorder:
    def __init__(self) -> None:
        self.records: list[CallRecord] = []

    def on_call(self, record: CallRecord) -> None:
        self.records.append(record)


def engine_with(provider: FunctionProvider, recorder: Recorder | None = None) -> Engine:
    catalog = Catalog.load()
    registry = ProviderRegistry(Settings(), catalog)
    registry.add(provider)
    return Engine(registry, catalog, observers=[recorder] if recorder else [])


async def test_complete_times_and_prices_the_call() -> None:
    # a double posing as Sonnet, so the catalogue prices it
    provider = FunctionProvider(
        lambda r: "four words of reply", name="anthropic", model="claude-sonnet-5-5"
    )
    recorder = Recorder()
    engine = engine_with(provider, recorder)
    completion = await engine.complete(Request.of("one two three", model="sonnet"))
    assert completion.text == "four words of reply"
    assert completion.provider == "anthropic" and completion.model == "claude-sonnet-5-5"
    assert completion.ttft_s == completion.duration_s > 0
    assert completion.streamed is False
    expected = Catalog.load().get("sonnet").cost(Usage(input_tokens=3, output_tokens=4))
    assert completion.cost_usd == pytest.approx(expected)
    [record] = recorder.records
    assert record.completion == completion and record.error is None


async def test_stream_measures_ttft_before_duration() -> None:
    provider = FunctionProvider(
        replies=["a b c d"], name="fake", model="m", first_chunk_delay_s=0.02, chunk_delay_s=0.02
    )
    engine = engine_with(provider)
    stream = engine.stream(Request.of("x", model="fake:m"))
    texts = [chunk.text async for chunk in stream]
    completion = stream.completion
    assert completion is not None
    assert "".join(texts) == completion.text == "a b c d"
    assert 0 < completion.ttft_s < completion.duration_s
    assert completion.streamed is True
    assert completion.cost_usd is None  # not in the catalogue


async def test_errors_reach_the_caller_and_the_observers() -> None:
    provider = FunctionProvider(replies=[RateLimited("busy", retry_after=1)], name="f", model="m")
    recorder = Recorder()
    with pytest.raises(RateLimited):
        await engine_with(provider, recorder).complete(Request.of("x", model="f:m"))
    [record] = recorder.records
    assert isinstance(record.error, RateLimited) and record.completion is None


async def test_broken_stream_reports_partial_text() -> None:
    provider = FunctionProvider(replies=[["par", "tial", OSError("drop")]], name="f", model="m")
    recorder = Recorder()
    stream = engine_with(provider, recorder).stream(Request.of("x", model="f:m"))
    with pytest.raises(ProviderUnavailable) as info:
        async for _ in stream:
            pass
    assert info.value.partial_text == "partial"
    assert stream.completion is None
    assert isinstance(recorder.records[0].error, ProviderUnavailable)


async def test_concurrent_calls_do_not_interfere() -> None:
    provider = FunctionProvider(
        lambda r: r.messages[-1].content.upper(), name="f", model="m", chunk_delay_s=0.001
    )
    engine = engine_with(provider)
    prompts = [f"prompt {i}" for i in range(20)]
    results = await asyncio.gather(*(engine.complete(Request.of(p, model="f:m")) for p in prompts))
    assert [r.text for r in results] == [p.upper() for p in prompts]


def test_from_settings_loads_user_catalogue_files(tmp_path: object) -> None:
    engine = Engine.from_settings(Settings())
    assert engine.catalog.find("sonnet") is not None
