"""Every engine call goes through the cache: L1 through the simulator's real wire protocols,
L3 paraphrases answered without a provider call, cached streams replayed as streams."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from helios.cache.backends.memory import MemoryBackend
from helios.cache.backends.usearch import UsearchIndex
from helios.cache.exact import ExactCache
from helios.cache.manager import CacheManager
from helios.cache.prompt import PromptCachePlanner, WarmPrefixes
from helios.cache.semantic import SemanticCache
from helios.cache.verifier import HitVerifier
from helios.catalog import Catalog
from helios.config.cache import SemanticCacheSettings
from helios.config.settings import Settings
from helios.embeddings.onnx import OnnxMiniLM
from helios.engine import Engine
from helios.messages import Request
from helios.providers.function import FunctionProvider
from helios.providers.registry import ProviderRegistry
from helios.sim import SimServer
from tests.providers.remote import remote_settings

SONNET = "claude-sonnet-5-5"
SYSTEM = " ".join(f"Rule {n}: answer plainly and cite the source." for n in range(133))
PREFIX_TOKENS = -(-len(SYSTEM) // 4)  # the simulator bills 4 characters a token


def l1_engine(settings: Settings) -> Engine:
    catalog = Catalog.load()
    registry = ProviderRegistry(settings, catalog)
    backend = MemoryBackend()
    cache = CacheManager(
        catalog,
        exact=ExactCache(backend),
        planner=PromptCachePlanner(catalog),
        warm=WarmPrefixes(backend),
        kind_of=registry.kind_of,
    )
    return Engine(registry, catalog, cache=cache)


async def test_repeated_long_system_prompts_read_the_provider_cache(sim: SimServer) -> None:
    engine = l1_engine(remote_settings("anthropic", sim.base_url))
    cache = engine.cache
    assert cache is not None
    prices = Catalog.load().get(SONNET).prices
    try:
        first = await engine.complete(Request.of("First question?", model=SONNET, system=SYSTEM))
        before = await cache.lookup(
            Request.of("Third question?", system=SYSTEM), "anthropic", SONNET
        )
        second = await engine.complete(Request.of("Second question?", model=SONNET, system=SYSTEM))
    finally:
        await engine.aclose()
        assert engine.cache is not None
        await engine.cache.aclose()
    # the engine placed the breakpoint: the first call wrote the prefix, the second read it
    assert first.usage.cache_write_5m_tokens == PREFIX_TOKENS
    assert second.usage.cache_read_tokens == PREFIX_TOKENS
    assert first.cache_layer is None and second.cache_layer is None  # L1 never answers
    # savings are the catalogue's arithmetic: reads at the read price instead of input,
    # writes at their premium over input
    write_premium = PREFIX_TOKENS * (prices.cache_write_5m - prices.input) / 1e6
    read_saving = PREFIX_TOKENS * (prices.input - prices.cache_read) / 1e6
    assert first.saved_usd == pytest.approx(-write_premium)
    assert second.saved_usd == pytest.approx(read_saving)
    # between the calls, the lookup already knew the prefix was warm and what it would save
    assert before.l1.warm and before.l1.prefix_tokens == PREFIX_TOKENS
    assert before.l1.expected_savings_usd == pytest.approx(read_saving)
    l1 = cache.snapshot()["layers"]["L1"]
    assert l1["tokens_saved"] == PREFIX_TOKENS
    assert l1["cost_saved_usd"] == pytest.approx(read_saving - write_premium)


async def test_openai_calls_carry_the_prefix_hash_as_prompt_cache_key(sim: SimServer) -> None:
    engine = l1_engine(remote_settings("openai", sim.base_url + "/v1"))
    try:
        first = await engine.complete(Request.of("One?", model="openai:gpt-5.5", system=SYSTEM))
        second = await engine.complete(Request.of("Two?", model="openai:gpt-5.5", system=SYSTEM))
        short = await engine.complete(Request.of("Hi", model="openai:gpt-5.5", system="Be brief"))
    finally:
        await engine.aclose()
        assert engine.cache is not None
        await engine.cache.aclose()
    keys = [r.body.get("prompt_cache_key") for r in sim.state.requests]
    assert keys[0] is not None and keys[0] == keys[1]
    assert keys[2] is None  # below OpenAI's 1,024 tokens there is nothing to key
    assert first.usage.cache_read_tokens == 0
    assert second.usage.cache_read_tokens > 0 and second.saved_usd and second.saved_usd > 0
    assert short.saved_usd is None


@pytest.fixture(scope="module")
def embedder() -> OnnxMiniLM:
    return OnnxMiniLM()


@pytest.fixture
async def l3_engine(tmp_path: Path, embedder: OnnxMiniLM) -> AsyncIterator[Engine]:
    catalog = Catalog.load()
    registry = ProviderRegistry(Settings(), catalog)
    registry.add(
        FunctionProvider(
            replies=[["Open Settings, ", "then Security, ", "then Reset."], "Call the bank."],
            name="anthropic",
            model=SONNET,
        )
    )
    semantic = SemanticCache(
        UsearchIndex(tmp_path / "cache.sqlite3", embedder.dim),
        embedder,
        SemanticCacheSettings(),
        verifier=HitVerifier(),
    )
    cache = CacheManager(catalog, exact=ExactCache(MemoryBackend()), semantic=semantic)
    engine = Engine(registry, catalog, cache=cache)
    yield engine
    await engine.aclose()
    await cache.aclose()


async def test_a_paraphrase_is_served_from_l3_as_the_original_stream(l3_engine: Engine) -> None:
    original = l3_engine.stream(Request.of("How do I reset my password?", model=SONNET))
    chunks = [chunk.text async for chunk in original if chunk.text]
    paraphrase = l3_engine.stream(Request.of("How can I reset my password?", model=SONNET))
    replayed = [chunk.text async for chunk in paraphrase if chunk.text]
    assert replayed == chunks == ["Open Settings, ", "then Security, ", "then Reset."]
    assert paraphrase.completion is not None
    assert paraphrase.completion.cache_layer == "L3" and paraphrase.completion.streamed
    assert paraphrase.completion.cost_usd == 0.0 and paraphrase.completion.saved_usd
    different = await l3_engine.complete(Request.of("How do I close my account?", model=SONNET))
    assert different.cache_layer is None and different.text == "Call the bank."


async def test_each_persona_has_its_own_hits_misses_and_savings() -> None:
    catalog = Catalog.load()
    registry = ProviderRegistry(Settings(), catalog)
    registry.add(
        FunctionProvider(
            lambda r: "an answer of five words",
            name="anthropic",
            model=SONNET,
            first_chunk_delay_s=0.05,
        )
    )
    cache = CacheManager(catalog, exact=ExactCache(MemoryBackend()))
    engine = Engine(registry, catalog, cache=cache)
    thesis = Request.of("Argue for it.", model=SONNET).with_context(persona="thesis")
    judge = Request.of("Grade it.", model=SONNET).with_context(persona="judge")
    first = await engine.complete(thesis)
    hit = await engine.complete(thesis)
    await engine.complete(judge)
    assert hit.cache_layer == "L2" and hit.saved_s == pytest.approx(first.duration_s)
    personas = cache.snapshot()["personas"]
    assert personas["thesis"]["lookups"] == 2 and personas["thesis"]["hits_by_layer"] == {"L2": 1}
    assert personas["thesis"]["cost_saved_usd"] == pytest.approx(first.cost_usd)
    assert personas["thesis"]["time_saved_s"] >= 0.05
    assert (personas["judge"]["hits"], personas["judge"]["misses"]) == (0, 1)
