import asyncio
from pathlib import Path

import pytest

from helios.catalog import Catalog
from helios.config.settings import Settings
from helios.engine import CallRecord, Engine
from helios.errors import ProviderUnavailable, RateLimited
from helios.messages import CacheDirectives, Request, Usage
from helios.providers.function import FunctionProvider
from helios.providers.registry import ProviderRegistry
from helios.runtime import Runtime


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


async def test_the_runtime_builds_the_engine_with_the_user_catalogue(tmp_path: Path) -> None:
    extra = tmp_path / "models.yaml"
    extra.write_text(
        "models:\n"
        "  - {id: house-model, provider: openai, tier: fast, context_window: 8192,\n"
        "     max_output_tokens: 1024, aliases: [house], prices: {input: 1, output: 2,\n"
        "     cache_write_5m: 1, cache_write_1h: 1, cache_read: 0.1}}\n"
    )
    settings = Settings(catalog_files=[extra], ledger={"enabled": False})
    async with Runtime.open(settings) as runtime:
        assert runtime.engine.catalog.find("sonnet") is not None
        assert runtime.engine.catalog.find("house") is not None
        assert runtime.engine.router is runtime.router


def cached_engine(provider: FunctionProvider) -> tuple[Engine, list[str]]:
    """An engine with a memory L2 cache; ``built`` lists the provider specs it resolved."""
    from helios.cache.backends.memory import MemoryBackend
    from helios.cache.exact import ExactCache
    from helios.cache.manager import CacheManager

    catalog = Catalog.load()
    registry = ProviderRegistry(Settings(), catalog)
    built: list[str] = []

    def factory(name: str, model: str, settings: Settings) -> FunctionProvider:
        built.append(f"{name}:{model}")
        return provider

    registry.register_factory(provider.name, factory)
    return Engine(
        registry, catalog, cache=CacheManager(catalog, exact=ExactCache(MemoryBackend()))
    ), built


async def test_cache_hit_never_builds_the_provider() -> None:
    provider = FunctionProvider(lambda r: "cached words here", name="lazy", model="m")
    engine, built = cached_engine(provider)
    request = Request.of("same question", model="lazy:m")
    first = await engine.complete(request)
    assert first.cache_layer is None and built == ["lazy:m"]
    engine.registry._providers.clear()  # a fresh process: nothing resolved yet
    second = await engine.complete(request)
    assert second.cache_layer == "L2" and second.text == first.text
    assert second.cost_usd == 0.0
    assert built == ["lazy:m"]  # the hit did not resolve (or import) anything
    assert len(provider.calls) == 1


async def test_streamed_and_whole_requests_share_cache_entries() -> None:
    provider = FunctionProvider(replies=[["Par", "is is ", "nice"]], name="lazy", model="m")
    engine, _ = cached_engine(provider)
    request = Request.of("q", model="lazy:m")
    stream = engine.stream(request)
    assert [c.text async for c in stream if c.text] == ["Par", "is is ", "nice"]
    replay = engine.stream(request)
    assert [c.text async for c in replay if c.text] == ["Par", "is is ", "nice"]
    assert replay.completion is not None and replay.completion.cache_layer == "L2"
    whole = await engine.complete(request)
    assert whole.text == "Paris is nice" and whole.cache_layer == "L2"


async def test_a_broken_stream_is_not_cached() -> None:
    provider = FunctionProvider(
        replies=[["half", OSError("drop")], "whole answer"], name="lazy", model="m"
    )
    engine, _ = cached_engine(provider)
    request = Request.of("q", model="lazy:m")
    with pytest.raises(ProviderUnavailable):
        async for _ in engine.stream(request):
            pass
    retried = await engine.complete(request)
    assert retried.text == "whole answer" and retried.cache_layer is None


async def test_cache_hits_report_what_they_saved() -> None:
    provider = FunctionProvider(
        lambda r: "three word reply", name="anthropic", model="claude-sonnet-5-5"
    )
    engine, _ = cached_engine(provider)
    request = Request.of("one two", model="sonnet")
    first = await engine.complete(request)
    second = await engine.complete(request)
    assert first.saved_usd is None and first.cost_usd and first.cost_usd > 0
    assert second.cost_usd == 0.0 and second.saved_usd == pytest.approx(first.cost_usd)


async def test_cache_directives_let_the_caller_skip_lookup_store_or_old_entries() -> None:
    provider = FunctionProvider(lambda r: "fresh words", name="lazy", model="m")
    engine, _ = cached_engine(provider)
    plain = Request.of("q", model="lazy:m")
    unstored = plain.model_copy(update={"cache": CacheDirectives(store=False)})
    assert (await engine.complete(unstored)).cache_layer is None
    assert (await engine.complete(plain)).cache_layer is None  # nothing had been stored
    assert (await engine.complete(plain)).cache_layer == "L2"
    no_cache = plain.model_copy(update={"cache": CacheDirectives(lookup=False)})
    assert (await engine.complete(no_cache)).cache_layer is None  # asked the provider again
    too_old = plain.model_copy(update={"cache": CacheDirectives(max_age_s=0)})
    assert (await engine.complete(too_old)).cache_layer is None
    fresh_enough = plain.model_copy(update={"cache": CacheDirectives(max_age_s=3600)})
    assert (await engine.complete(fresh_enough)).cache_layer == "L2"
    elsewhere = plain.model_copy(update={"cache": CacheDirectives(namespace="eu")})
    assert (await engine.complete(elsewhere)).cache_layer is None  # its own namespace
    assert len(provider.calls) == 5
